# The stream only keeps 24 h and a mapping can give up on a batch; the sweep
# publishes whatever is still pending in the outbox itself, so no event
# depends on the stream alone.
resource "aws_cloudwatch_event_rule" "outbox_sweep" {
  name                = "${var.prefix}outbox-sweep"
  description         = "Periodic sweep of unpublished outbox items."
  schedule_expression = "rate(5 minutes)"
}

resource "aws_cloudwatch_event_target" "outbox_sweep" {
  rule      = aws_cloudwatch_event_rule.outbox_sweep.name
  target_id = "outbox-relay"
  arn       = aws_lambda_function.outbox_relay.arn
}

resource "aws_lambda_permission" "outbox_relay_from_schedule" {
  statement_id  = "AllowOutboxSweepSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.outbox_relay.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.outbox_sweep.arn
}
