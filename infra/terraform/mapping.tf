resource "aws_lambda_event_source_mapping" "outbox_stream" {
  event_source_arn  = aws_dynamodb_table.outbox.stream_arn
  function_name     = aws_lambda_function.outbox_relay.arn
  starting_position = "LATEST"

  batch_size                         = 100
  maximum_batching_window_in_seconds = 1

  # The relay reports the lowest failing sequence number, and bisecting
  # isolates whatever it could not classify, so one bad record never holds
  # the shard; past these limits the batch goes to the DLQ and the sweep or
  # `outboxctl redrive` republishes it from the outbox's pending items.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = 10
  maximum_record_age_in_seconds  = 86400

  # Publishing marks items published (MODIFY) and TTL deletes them (REMOVE);
  # neither should cost an invocation.
  filter_criteria {
    filter {
      pattern = jsonencode({
        eventName = ["INSERT"]
      })
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq.arn
    }
  }

  # Lambda checks the role's stream and queue permissions when the mapping
  # is created.
  depends_on = [aws_iam_role_policy.outbox_relay]
}
