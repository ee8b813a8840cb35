output "exchange_endpoint" {
  description = "URL the desktop app POSTs its Firebase ID token to."
  value       = "${aws_apigatewayv2_api.exchange.api_endpoint}/auth/exchange"
}

output "auth_exchange_function_name" {
  value = aws_lambda_function.auth_exchange.function_name
}

output "outbox_relay_function_name" {
  value = aws_lambda_function.outbox_relay.function_name
}

output "user_profile_function_name" {
  value = aws_lambda_function.user_profile.function_name
}

output "outbox_table_name" {
  value = aws_dynamodb_table.outbox.name
}

output "users_table_name" {
  value = aws_dynamodb_table.users.name
}

output "processed_events_table_name" {
  value = aws_dynamodb_table.processed_events.name
}

output "event_bus_name" {
  value = aws_cloudwatch_event_bus.auth.name
}

output "dlq_url" {
  value = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  value = aws_sqs_queue.dlq.arn
}

output "app_role_arn" {
  description = "Role whose credentials the token exchange hands to the desktop app."
  value       = local.app_role_arn
}

output "alarm_topic_arn" {
  description = "Subscribe the on-call pager here."
  value       = aws_sns_topic.alarms.arn
}
