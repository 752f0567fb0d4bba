# The environment's bucket (release evidence bundles, database exports):
# SSE-KMS with the environment's key (R4.2), no public access, TLS-only access
# (R4.1), versioned, access logged to the trail bucket.
resource "aws_s3_bucket" "engine" {
  # checkov:skip=CKV_AWS_144:one region per environment; versioned objects, copies across
  # regions are the account's disaster-recovery plan, not this configuration's
  bucket = "${local.name}-${local.account}"
}

resource "aws_s3_bucket_server_side_encryption_configuration" "engine" {
  bucket = aws_s3_bucket.engine.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.environment.arn
    }
    bucket_key_enabled = true
  }
}

# Object events go to EventBridge: a deleted evidence bundle or trail file is seen.
resource "aws_s3_bucket_notification" "engine" {
  bucket      = aws_s3_bucket.engine.id
  eventbridge = true
}

resource "aws_s3_bucket_public_access_block" "engine" {
  bucket                  = aws_s3_bucket.engine.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "engine" {
  bucket = aws_s3_bucket.engine.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_logging" "engine" {
  bucket        = aws_s3_bucket.engine.id
  target_bucket = aws_s3_bucket.trail.id
  target_prefix = "s3-access/${local.name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "engine" {
  bucket = aws_s3_bucket.engine.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 400
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "engine" {
  bucket = aws_s3_bucket.engine.id
  policy = data.aws_iam_policy_document.tls_only["engine"].json
}

data "aws_iam_policy_document" "tls_only" {
  for_each = { engine = aws_s3_bucket.engine.arn, trail = aws_s3_bucket.trail.arn }
  statement {
    sid       = "DenyWithoutTLS"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "trail" ? [1] : []
    content {
      sid       = "CloudTrailWrites"
      actions   = ["s3:GetBucketAcl", "s3:PutObject"]
      resources = [each.value, "${each.value}/*"]
      principals {
        type        = "Service"
        identifiers = ["cloudtrail.amazonaws.com"]
      }
    }
  }
}
