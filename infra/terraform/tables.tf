# Keys, indexes and TTL attributes must agree with the definitions in
# migrations/, which a test compares against this file: keep them literal.

resource "aws_dynamodb_table" "outbox" {
  name                        = "${var.prefix}outbox"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "eventId"
  deletion_protection_enabled = true

  attribute {
    name = "eventId"
    type = "S"
  }

  # Present only while an item is unpublished, so the index stays sparse and
  # the sweep reads just the backlog. The value is one of a few shards so no
  # single index partition takes every sign-in.
  attribute {
    name = "pendingShard"
    type = "S"
  }

  attribute {
    name = "createdAt"
    type = "S"
  }

  global_secondary_index {
    name            = "pending-by-age"
    hash_key        = "pendingShard"
    range_key       = "createdAt"
    projection_type = "ALL"
  }

  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  # Default 14 days: long after the stream's 24 h retention, so the sweep can
  # still find anything the stream path never published.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.events.arn
  }
}

resource "aws_dynamodb_table" "users" {
  name                        = "${var.prefix}users"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "userId"
  deletion_protection_enabled = true

  attribute {
    name = "userId"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.events.arn
  }
}

resource "aws_dynamodb_table" "processed_events" {
  name                        = "${var.prefix}processed-events"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "eventId"
  deletion_protection_enabled = true

  attribute {
    name = "eventId"
    type = "S"
  }

  # Default 35 days: outlives the outbox TTL plus the DLQ's 14 days, so an
  # event that can still be redriven is still deduplicated.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.events.arn
  }
}
