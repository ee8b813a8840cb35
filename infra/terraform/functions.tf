# Explicit log groups so retention and encryption are ours rather than the
# defaults Lambda would create on first invocation (never expiring, AWS key).
resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Operational logs only (no tokens or clear-text emails); the durable record of every event is the EventBridge archive and the tables. Retention is var.log_retention_days, raise it where policy requires a year.
  for_each = local.functions

  name              = "/aws/lambda/${var.prefix}${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.events.arn
}

# --- token exchange --------------------------------------------------------

resource "aws_lambda_function" "auth_exchange" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; the caller gets the error, so an async dead-letter queue would never receive anything.
  #checkov:skip=CKV_AWS_117:Talks only to public AWS endpoints (STS, DynamoDB, EventBridge) and Google's certificate URL; a VPC would add NAT cost and cold-start latency and protect nothing.
  #checkov:skip=CKV_AWS_272:Artifacts are built by `make package` and uploaded directly by Terraform; code signing needs an S3-based signing pipeline this project does not have.
  function_name = "${var.prefix}auth-exchange"
  description   = "Exchanges a Firebase ID token for short-lived AWS credentials and records user.signed_in."
  role          = aws_iam_role.auth_exchange.arn

  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_artifacts_dir}/auth-exchange/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/auth-exchange/bootstrap.zip")
  memory_size      = 128
  # The desktop app waits on this call; STS plus a bounded outbox write fit
  # comfortably, and anything slower is better failed than left hanging.
  timeout = 10

  reserved_concurrent_executions = var.reserved_concurrency.auth_exchange
  kms_key_arn                    = aws_kms_key.events.arn

  environment {
    variables = {
      FIREBASE_PROJECT_ID = var.firebase_project_id
      APP_ROLE_ARN        = local.app_role_arn
      OUTBOX_TABLE        = aws_dynamodb_table.outbox.name
      EVENT_BUS_NAME      = aws_cloudwatch_event_bus.auth.name
      # Sign-in must not wait on the event pipeline: after this budget the
      # function falls back to a direct PutEvents, then to a logged event.
      OUTBOX_WRITE_BUDGET_MS = "300"
      OUTBOX_REQUIRED        = "false"
      # Who may sign in (crates/auth-exchange/src/policy.rs); empty means
      # the default: every provider but anonymous, any tenant-less token.
      ALLOWED_PROVIDERS      = var.allowed_providers
      REQUIRE_VERIFIED_EMAIL = tostring(var.require_verified_email)
      ALLOWED_TENANTS        = var.allowed_tenants
      # The HMAC key of every logged e-mail hash; without it the function
      # refuses to start.
      PII_HASH_KEY = var.pii_hash_key
      RUST_LOG     = "info"
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function["auth_exchange"].name
  }

  tracing_config {
    mode = "Active"
  }
}

# An HTTP API rather than a Function URL: it gives per-route throttling and
# access logs in front of an endpoint that anyone on the internet can call.
resource "aws_apigatewayv2_api" "exchange" {
  name          = "${var.prefix}auth-exchange"
  description   = "Token exchange for the desktop app."
  protocol_type = "HTTP"
}

resource "aws_apigatewayv2_integration" "auth_exchange" {
  api_id                 = aws_apigatewayv2_api.exchange.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.auth_exchange.invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "exchange" {
  #checkov:skip=CKV_AWS_309:This route is how a caller obtains AWS credentials, so it cannot require them; the function verifies the Firebase ID token (signature, aud, iss, exp) itself and answers 401 otherwise.
  api_id             = aws_apigatewayv2_api.exchange.id
  route_key          = "POST /auth/exchange"
  target             = "integrations/${aws_apigatewayv2_integration.auth_exchange.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338:Access logs hold request metadata only and serve debugging and rate analysis; retention follows var.log_retention_days like the function logs.
  name              = local.api_access_log_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.events.arn
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.exchange.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.api_throttle.rate_limit
    throttling_burst_limit = var.api_throttle.burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
    })
  }
}

resource "aws_lambda_permission" "auth_exchange_from_api" {
  statement_id  = "AllowExchangeRoute"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.auth_exchange.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.exchange.execution_arn}/*/POST/auth/exchange"
}

# --- outbox relay ----------------------------------------------------------

resource "aws_lambda_function" "outbox_relay" {
  #checkov:skip=CKV_AWS_116:Stream batches fail over to the event source mapping's on-failure destination and the relay dead-letters poison records itself; its only async caller is the 5-minute sweep, which the next sweep supersedes.
  #checkov:skip=CKV_AWS_117:Talks only to public AWS endpoints (DynamoDB, EventBridge, SQS); a VPC would add NAT cost and latency and protect nothing.
  #checkov:skip=CKV_AWS_272:Artifacts are built by `make package` and uploaded directly by Terraform; code signing needs an S3-based signing pipeline this project does not have.
  function_name = "${var.prefix}outbox-relay"
  description   = "Publishes outbox items to the auth-events bus from the table stream and the scheduled sweep."
  role          = aws_iam_role.outbox_relay.arn

  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_artifacts_dir}/outbox-relay/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/outbox-relay/bootstrap.zip")
  memory_size      = 128
  # Room for a full batch with in-invocation backoff on throttled PutEvents.
  timeout = 60

  # One invocation per stream shard plus a sweep; the cap keeps a backlog
  # drain from flooding the bus or the outbox table with updates.
  reserved_concurrent_executions = var.reserved_concurrency.outbox_relay
  kms_key_arn                    = aws_kms_key.events.arn

  environment {
    variables = {
      OUTBOX_TABLE          = aws_dynamodb_table.outbox.name
      EVENT_BUS_NAME        = aws_cloudwatch_event_bus.auth.name
      DLQ_URL               = aws_sqs_queue.dlq.url
      DLQ_MAX_MESSAGE_BYTES = aws_sqs_queue.dlq.max_message_size
      MAX_ATTEMPTS          = "5"
      SWEEP_OLDER_THAN_SECS = "300"
      RUST_LOG              = "info"
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function["outbox_relay"].name
  }

  tracing_config {
    mode = "Active"
  }
}

# The sweep is the relay's only async trigger and runs every five minutes;
# retrying a failed sweep would just overlap the next one.
resource "aws_lambda_function_event_invoke_config" "outbox_relay" {
  function_name                = aws_lambda_function.outbox_relay.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 300
}

# --- user profile ----------------------------------------------------------

resource "aws_lambda_function" "user_profile" {
  #checkov:skip=CKV_AWS_116:Async failures go to the on-failure destination (aws_lambda_function_event_invoke_config.user_profile), which records the original event plus the error; a second dead-letter config would duplicate every failure.
  #checkov:skip=CKV_AWS_117:Talks only to DynamoDB's public endpoint; a VPC would add NAT or endpoint cost and cold-start latency and protect nothing.
  #checkov:skip=CKV_AWS_272:Artifacts are built by `make package` and uploaded directly by Terraform; code signing needs an S3-based signing pipeline this project does not have.
  function_name = "${var.prefix}user-profile"
  description   = "Keeps the users table from user.signed_in events, idempotently."
  role          = aws_iam_role.user_profile.arn

  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_artifacts_dir}/user-profile/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/user-profile/bootstrap.zip")
  memory_size      = 128
  timeout          = 30

  reserved_concurrent_executions = var.reserved_concurrency.user_profile
  kms_key_arn                    = aws_kms_key.events.arn

  environment {
    variables = {
      USERS_TABLE            = aws_dynamodb_table.users.name
      PROCESSED_EVENTS_TABLE = aws_dynamodb_table.processed_events.name
      RUST_LOG               = "info"
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function["user_profile"].name
  }

  tracing_config {
    mode = "Active"
  }
}

# Conditional-write conflicts are handled inside the function, so an error
# here is real; two retries ride out a blip, then the event is dead-lettered
# whole and `outboxctl redrive` puts it back on the bus.
resource "aws_lambda_function_event_invoke_config" "user_profile" {
  function_name          = aws_lambda_function.user_profile.function_name
  maximum_retry_attempts = 2

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dlq.arn
    }
  }

  depends_on = [aws_iam_role_policy.user_profile]
}
