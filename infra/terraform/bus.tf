resource "aws_cloudwatch_event_bus" "auth" {
  name = "${var.prefix}auth-events"
}

# Lets a subscriber added later replay history, and is the last resort if an
# event was published but every consumer path failed.
resource "aws_cloudwatch_event_archive" "auth" {
  name             = "${var.prefix}auth-events"
  description      = "Every auth event published on ${aws_cloudwatch_event_bus.auth.name}."
  event_source_arn = aws_cloudwatch_event_bus.auth.arn
  retention_days   = 30

  event_pattern = jsonencode({
    source = [local.event_source]
  })
}

resource "aws_cloudwatch_event_rule" "user_signed_in" {
  name           = "${var.prefix}user-signed-in"
  description    = "user.signed_in events to the user profile function."
  event_bus_name = aws_cloudwatch_event_bus.auth.name

  event_pattern = jsonencode({
    source        = [local.event_source]
    "detail-type" = ["user.signed_in"]
  })
}

resource "aws_cloudwatch_event_target" "user_profile" {
  rule           = aws_cloudwatch_event_rule.user_signed_in.name
  event_bus_name = aws_cloudwatch_event_bus.auth.name
  target_id      = "user-profile"
  arn            = aws_lambda_function.user_profile.arn

  # The maximum EventBridge allows: these retries only cover failing to hand
  # the event to Lambda (throttling, service errors); once Lambda accepts it,
  # the function's own async retries and on-failure destination take over.
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.dlq.arn
  }
}

resource "aws_lambda_permission" "user_profile_from_bus" {
  statement_id  = "AllowUserSignedInRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.user_profile.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.user_signed_in.arn
}
