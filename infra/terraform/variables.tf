variable "prefix" {
  description = "Prepended to every resource name; ends with a dash."
  type        = string
  default     = "meeting-recorder-dev-"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]*-$", var.prefix))
    error_message = "prefix must be lowercase letters, digits and dashes, and end with a dash."
  }
}

variable "environment" {
  description = "Deployment stage, used for tagging (dev, staging, prod)."
  type        = string
  default     = "dev"
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "firebase_project_id" {
  description = "Firebase project whose ID tokens the token exchange accepts (the expected aud claim)."
  type        = string

  validation {
    condition     = length(trimspace(var.firebase_project_id)) > 0
    error_message = "firebase_project_id must not be empty."
  }
}

variable "app_role_arn" {
  description = <<-EOT
    Role the token exchange assumes on behalf of the desktop app. Leave empty
    to have this stack create it (aws_iam_role.app). An existing role must
    trust the auth-exchange role for sts:AssumeRole, sts:SetSourceIdentity
    and sts:TagSession.
  EOT
  type        = string
  default     = ""
}

variable "app_role_policy_arns" {
  description = "Managed policies granting the desktop app its AWS permissions; attached only to a role this stack creates."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Retention of every log group in this stack."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
  }
}

variable "lambda_artifacts_dir" {
  description = "Where `make package` leaves <function>/bootstrap.zip, relative to the directory terraform runs in."
  type        = string
  default     = "../../target/lambda"
}

variable "reserved_concurrency" {
  description = <<-EOT
    Reserved concurrency per function. It caps each function so a burst in
    one cannot starve the others (or the account), and bounds the write rate
    the tables see. Use -1 for unreserved where an account's concurrency
    quota is too small to reserve anything.
  EOT
  type = object({
    auth_exchange = number
    outbox_relay  = number
    user_profile  = number
  })
  default = {
    auth_exchange = 50
    outbox_relay  = 10
    user_profile  = 20
  }
}

variable "api_throttle" {
  description = "Steady-state requests per second and burst allowed on POST /auth/exchange."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
  default = {
    rate_limit  = 100
    burst_limit = 200
  }
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic (the subscription must be confirmed from the mailbox)."
  type        = string
  default     = ""
}

variable "pii_hash_key" {
  description = "Per-deployment secret (at least 32 characters) keying the HMAC of every e-mail hash the functions and outboxctl log, so a list of known addresses cannot reverse them. Give outboxctl the same value as PII_HASH_KEY."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.pii_hash_key) >= 32
    error_message = "pii_hash_key must be at least 32 characters (for example: openssl rand -hex 32)."
  }
}

variable "allowed_providers" {
  description = "Comma-separated firebase.sign_in_provider values that may sign in; empty allows every provider but anonymous."
  type        = string
  default     = ""
}

variable "require_verified_email" {
  description = "Refuse (403 email_not_verified) tokens whose email_verified claim is not true."
  type        = bool
  default     = false
}

variable "allowed_tenants" {
  description = "Comma-separated Identity Platform tenants whose tokens may sign in; empty refuses every token that names a tenant."
  type        = string
  default     = ""
}

variable "redrive_principal_arns" {
  description = "IAM principals (role ARNs, wildcards allowed) besides the exchange and relay that may put interview-companion.auth events on the bus: the role the SRE runs `outboxctl redrive` as. Empty means nobody else."
  type        = list(string)
  default     = []
}
