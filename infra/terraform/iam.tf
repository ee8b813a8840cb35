# --- encryption key --------------------------------------------------------

# One customer-managed key for the tables, their stream, the DLQ, the alarm
# topic, the log groups and the functions' environment: everything that can
# hold an event payload or a user's email is under a key we can audit,
# rotate and revoke.
resource "aws_kms_key" "events" {
  description             = "${var.prefix}auth-events data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "events" {
  name          = "alias/${var.prefix}auth-events"
  target_key_id = aws_kms_key.events.key_id
}

# Functions get key access through their own role policies (granted by the
# account statement); only the services that write on the stack's behalf
# without a role of ours are named here. Log group ARNs are spelled out
# rather than referenced because the groups themselves depend on this key.
data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; the account statement keeps key administration with IAM, as AWS's default key policy does.
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; write access is further limited by the caller's IAM policy.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only and cannot be narrowed.
  statement {
    sid       = "AccountAdministersKeyThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsForThisStack"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${var.prefix}*",
        "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:${local.api_access_log_name}",
      ]
    }
  }

  # EventBridge encrypts the bus's events and its archive under this key,
  # decrypts them to deliver to the rule's target and writes the target's
  # dead letters to the encrypted DLQ. The ARNs are spelled out because the
  # bus and archive themselves depend on this key.
  statement {
    sid       = "EventBridgeForThisBus"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncrypt*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values = [
        "arn:${local.partition}:events:${var.region}:${local.account_id}:event-bus/${local.bus_name}",
        "arn:${local.partition}:events:${var.region}:${local.account_id}:archive/${local.bus_name}",
        "arn:${local.partition}:events:${var.region}:${local.account_id}:rule/${local.bus_name}/*",
      ]
    }
  }

  # EventBridge checks the key is symmetric when a bus or archive is created
  # with it; key metadata only, no data, as in AWS's example key policy.
  statement {
    sid       = "EventBridgeDescribesKey"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }

  # CloudWatch alarms publish to the encrypted alarm topic.
  statement {
    sid       = "CloudWatchAlarmsToTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- shared by every function ----------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# Each function may write only to its own log group.
data "aws_iam_policy_document" "lambda_basics" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  # X-Ray's write actions have no resource-level permissions; "*" is the
  # only value IAM accepts for them.
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

# Each function's own document grants the stack's key only through the
# services that function calls (kms:ViaService), plus Lambda itself, which
# decrypts the function's environment with the function's role.

# --- auth-exchange -----------------------------------------------------------

resource "aws_iam_role" "auth_exchange" {
  name               = "${var.prefix}auth-exchange"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "auth_exchange" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_basics["auth_exchange"].json]

  statement {
    sid       = "WriteOutbox"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.outbox.arn]
  }

  # Fallback when the outbox write misses its budget.
  statement {
    sid       = "PublishDirectly"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.auth.arn]

    # Only the contract's own events: the bus policy denies this source to
    # everyone else, and this role may publish nothing else.
    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.event_source]
    }
  }

  statement {
    sid       = "IssueAppCredentials"
    actions   = ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
    resources = [local.app_role_arn]
  }

  # The stack's key, only as used through the outbox table, the bus and the
  # function's own environment.
  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.events.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${var.region}.amazonaws.com",
        "events.${var.region}.amazonaws.com",
        "lambda.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "auth_exchange" {
  name   = "${var.prefix}auth-exchange"
  role   = aws_iam_role.auth_exchange.id
  policy = data.aws_iam_policy_document.auth_exchange.json
}

# --- outbox-relay ------------------------------------------------------------

resource "aws_iam_role" "outbox_relay" {
  name               = "${var.prefix}outbox-relay"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "outbox_relay" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_basics["outbox_relay"].json]

  statement {
    sid = "ReadOutboxStream"
    actions = [
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
      "dynamodb:DescribeStream",
      "dynamodb:ListStreams",
    ]
    resources = [aws_dynamodb_table.outbox.stream_arn]
  }

  # Marking is a conditional update; the relay never reads an item back
  # (only outboxctl, which runs as an operator, calls GetItem).
  statement {
    sid       = "MarkPublished"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.outbox.arn]
  }

  statement {
    sid       = "SweepPending"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.outbox.arn}/index/pending-by-age"]
  }

  statement {
    sid       = "Publish"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.auth.arn]

    # Only the contract's own events: the bus policy denies this source to
    # everyone else, and this role may publish nothing else.
    condition {
      test     = "StringEquals"
      variable = "events:source"
      values   = [local.event_source]
    }
  }

  # The relay's own dead letters and the stream mapping's on-failure records.
  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  # The stack's key, only as used through the outbox table and stream, the
  # bus, the DLQ and the function's own environment.
  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.events.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${var.region}.amazonaws.com",
        "events.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com",
        "lambda.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "outbox_relay" {
  name   = "${var.prefix}outbox-relay"
  role   = aws_iam_role.outbox_relay.id
  policy = data.aws_iam_policy_document.outbox_relay.json
}

# --- user-profile ------------------------------------------------------------

resource "aws_iam_role" "user_profile" {
  name               = "${var.prefix}user-profile"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "user_profile" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_basics["user_profile"].json]

  # One TransactWriteItems per event (crates/aws/src/profile.rs), authorised
  # per item action: a conditional Put of the idempotency record and a
  # conditional Update of the user. No reads and no ConditionCheck items,
  # because every merge is a condition expression on those two writes.
  statement {
    sid       = "RecordProcessedEvent"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.processed_events.arn]
  }

  statement {
    sid       = "UpdateUser"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.users.arn]
  }

  # The async on-failure destination is written with this role.
  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  # The stack's key, only as used through the profile tables, the DLQ and the
  # function's own environment.
  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.events.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${var.region}.amazonaws.com",
        "sqs.${var.region}.amazonaws.com",
        "lambda.${var.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "user_profile" {
  name   = "${var.prefix}user-profile"
  role   = aws_iam_role.user_profile.id
  policy = data.aws_iam_policy_document.user_profile.json
}

# --- desktop app -------------------------------------------------------------

locals {
  create_app_role = var.app_role_arn == ""
  app_role_arn    = local.create_app_role ? aws_iam_role.app[0].arn : var.app_role_arn
}

# Only the token exchange can assume this role, and only while naming the
# Firebase user as source identity and tagging the session with exactly one
# tag, userId (auth_exchange::credentials::USER_ID_TAG), so every API call
# the app makes is attributable in CloudTrail and the app role's policies can
# scope data to ${aws:PrincipalTag/userId}.
data "aws_iam_policy_document" "app_assume" {
  statement {
    sid     = "TokenExchange"
    actions = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.auth_exchange.arn]
    }

    condition {
      test     = "Null"
      variable = "sts:SourceIdentity"
      values   = ["false"]
    }

    condition {
      test     = "Null"
      variable = "aws:RequestTag/userId"
      values   = ["false"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["userId"]
    }
  }
}

resource "aws_iam_role" "app" {
  count = local.create_app_role ? 1 : 0

  name                 = "${var.prefix}desktop-app"
  description          = "Assumed by the token exchange on behalf of a signed-in desktop app user."
  assume_role_policy   = data.aws_iam_policy_document.app_assume.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "app" {
  for_each = local.create_app_role ? toset(var.app_role_policy_arns) : toset([])

  role       = aws_iam_role.app[0].name
  policy_arn = each.value
}
