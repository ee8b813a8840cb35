terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # logging_config on Lambda, deletion protection on DynamoDB and KMS
      # rotation settings all need a 5.x release from 2024 on.
      version = "~> 5.50"
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
  api_access_log_name = "/aws/apigateway/${var.prefix}auth-exchange"
}
