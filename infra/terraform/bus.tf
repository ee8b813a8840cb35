# Events hold users' e-mail addresses: bus and archive are under the
# stack's key (its policy lets EventBridge use it for this bus only).
resource "aws_cloudwatch_event_bus" "auth" {
  name               = local.bus_name
  kms_key_identifier = aws_kms_key.events.arn
}

# Lets a subscriber added later replay history, and is the last resort if an
# event was published but every consumer path failed.
# Nobody but the two publishers (and the SRE's redrive role, which
# `outboxctl redrive` runs as) may put the contract's events on this bus,
# whatever their own IAM policy allows: a consumer must be able to trust
# that an interview-companion.auth event came from the exchange or relay.
data "aws_iam_policy_document" "bus" {
  statement {
    sid       = "OnlyPublishersSendAuthEvents"
    effect    = "Deny"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.auth.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.event_source]
    }

    # aws:PrincipalArn is the role's ARN for a session of that role; ArnNotLike
    # lets a redrive principal be given with a wildcard (SSO role paths).
    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values = concat(
        [aws_iam_role.auth_exchange.arn, aws_iam_role.outbox_relay.arn],
        var.redrive_principal_arns,
      )
    }
  }
}

resource "aws_cloudwatch_event_bus_policy" "auth" {
  event_bus_name = aws_cloudwatch_event_bus.auth.name
  policy         = data.aws_iam_policy_document.bus.json
}

resource "aws_cloudwatch_event_archive" "auth" {
  name               = local.bus_name
  description        = "Every auth event published on ${aws_cloudwatch_event_bus.auth.name}."
  event_source_arn   = aws_cloudwatch_event_bus.auth.arn
  retention_days     = 30
  kms_key_identifier = aws_kms_key.events.arn

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
