terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # kms_key_identifier on the event bus and, above all, on the event
      # archive needs a 6.x release (logging_config on Lambda, deletion
      # protection on DynamoDB and KMS rotation settings came in 5.x).
      version = "~> 6.2"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "auth-events"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Keys are Terraform-friendly, values are the deployed name suffixes.
  functions = {
    auth_exchange = "auth-exchange"
    outbox_relay  = "outbox-relay"
    user_profile  = "user-profile"
  }

  event_source        = "interview-companion.auth"
  bus_name            = "${var.prefix}auth-events"
  api_access_log_name = "/aws/apigateway/${var.prefix}auth-exchange"
}
