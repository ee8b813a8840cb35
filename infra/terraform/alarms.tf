resource "aws_sns_topic" "alarms" {
  name              = "${var.prefix}auth-events-alarms"
  kms_master_key_id = aws_kms_key.events.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_topics = [aws_sns_topic.alarms.arn]
}

# Anything in the DLQ is an event not yet delivered everywhere; it needs a
# human to look (`outboxctl dlq stats`) and redrive.
resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name        = "${var.prefix}auth-events-dlq-not-empty"
  alarm_description = "Dead letters waiting in ${aws_sqs_queue.dlq.name}: inspect with `outboxctl dlq list`, fix the cause, then `outboxctl redrive`."
  namespace         = "AWS/SQS"
  metric_name       = "ApproximateNumberOfMessagesVisible"
  dimensions = {
    QueueName = aws_sqs_queue.dlq.name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

resource "aws_cloudwatch_metric_alarm" "relay_errors" {
  alarm_name        = "${var.prefix}outbox-relay-errors"
  alarm_description = "The outbox relay failed invocations; stream batches are being retried and sweeps are failing."
  namespace         = "AWS/Lambda"
  metric_name       = "Errors"
  dimensions = {
    FunctionName = aws_lambda_function.outbox_relay.function_name
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

# Five minutes behind on a 24 h stream is not yet loss, but it is the early
# warning: records past maximum_record_age go to the DLQ.
resource "aws_cloudwatch_metric_alarm" "relay_iterator_age" {
  alarm_name        = "${var.prefix}outbox-relay-iterator-age"
  alarm_description = "The relay is more than 5 minutes behind the outbox stream."
  namespace         = "AWS/Lambda"
  metric_name       = "IteratorAge"
  dimensions = {
    FunctionName = aws_lambda_function.outbox_relay.function_name
  }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 300000
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

# Emitted by every sweep (0 when nothing is pending). Missing data counts as
# breaching: if sweeps stop reporting, nothing else notices a backlog that
# the stream path has already given up on.
resource "aws_cloudwatch_metric_alarm" "oldest_pending_age" {
  alarm_name          = "${var.prefix}outbox-oldest-pending-age"
  alarm_description   = "An outbox event has been unpublished for over 15 minutes, or the sweep stopped reporting. Check `outboxctl outbox pending`."
  namespace           = "AuthEvents"
  metric_name         = "OldestPendingAgeSeconds"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 900
  treat_missing_data  = "breaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}

# Sign-in is the user-facing path; 5xx covers both function crashes and the
# 502/503 the function returns when Google or STS is unavailable.
resource "aws_cloudwatch_metric_alarm" "exchange_5xx" {
  alarm_name        = "${var.prefix}auth-exchange-5xx"
  alarm_description = "POST /auth/exchange has been returning server errors for 10 minutes; desktop sign-ins are failing."
  namespace         = "AWS/ApiGateway"
  metric_name       = "5xx"
  dimensions = {
    ApiId = aws_apigatewayv2_api.exchange.id
    Stage = aws_apigatewayv2_stage.default.name
  }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = local.alarm_topics
  ok_actions          = local.alarm_topics
}
