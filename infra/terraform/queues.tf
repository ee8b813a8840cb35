# One dead-letter queue for the whole pipeline: `outboxctl` tells its three
# message shapes apart (relay dead letter, stream on-failure record, original
# event from EventBridge or the profile function), so on-call has one queue
# to watch and one command to redrive.
resource "aws_sqs_queue" "dlq" {
  name                              = "${var.prefix}auth-events-dlq"
  message_retention_seconds         = 1209600
  # Below SQS's 1 MiB: a letter never needs more (the outbox item keeps the
  # whole event), and the relay cuts its letters to this size.
  max_message_size                  = 262144
  kms_master_key_id                 = aws_kms_key.events.arn
  kms_data_key_reuse_period_seconds = 300
}

# The relay, the stream mapping and the profile function's destination write
# with their execution roles; only EventBridge's target DLQ needs the queue
# itself to grant access.
data "aws_iam_policy_document" "dlq" {
  statement {
    sid       = "EventBridgeTargetDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.user_signed_in.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dlq.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  policy    = data.aws_iam_policy_document.dlq.json
}
