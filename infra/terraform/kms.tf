data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name    = "consciousness-engine-${var.environment}"
  account = data.aws_caller_identity.current.account_id
}

# One customer-managed key per environment, rotated yearly by AWS: EKS Secrets,
# RDS storage, the evidence bucket, Secrets Manager, CloudTrail and log groups.
resource "aws_kms_key" "environment" {
  description             = "${local.name}: encryption at rest (R4.2, R4.3)"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "environment" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.environment.key_id
}

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111:a key policy's "*" resource is this key only, not every resource
  # checkov:skip=CKV_AWS_356:a key policy's "*" resource is this key only, not every resource
  # checkov:skip=CKV_AWS_109:the account root administers its own key (AWS's default key policy)
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy, "*" is this key
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "LogsAndTrailEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com", "cloudtrail.amazonaws.com"]
    }
  }
}
