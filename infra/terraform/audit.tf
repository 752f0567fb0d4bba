# Every management API call in every region, log files validated and encrypted,
# also sent to CloudWatch Logs for 13 months (R4.5).
resource "aws_cloudtrail" "environment" {
  name                          = local.name
  s3_bucket_name                = module.trail_bucket.id
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  kms_key_id                    = aws_kms_key.environment.arn
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.trail.arn
  sns_topic_name                = aws_sns_topic.trail.name
  depends_on                    = [module.trail_bucket]

  event_selector {
    read_write_type           = "All"
    include_management_events = true
    data_resource {
      type   = "AWS::S3::Object"
      values = ["${module.engine_bucket.arn}/"]
    }
  }
}

resource "aws_sns_topic" "trail" {
  name              = "${local.name}-trail"
  kms_master_key_id = aws_kms_key.environment.arn
}

resource "aws_cloudwatch_log_group" "trail" {
  name              = "/aws/cloudtrail/${local.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.environment.arn
}

resource "aws_iam_role" "trail" {
  name               = "${local.name}-trail"
  assume_role_policy = data.aws_iam_policy_document.trail_assume.json
}

data "aws_iam_policy_document" "trail_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "trail" {
  name   = "write-trail-logs"
  role   = aws_iam_role.trail.id
  policy = data.aws_iam_policy_document.trail_logs.json
}

data "aws_iam_policy_document" "trail_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trail.arn}:*"]
  }
}

# The trail's bucket: written by CloudTrail only, kept 13 months.
module "trail_bucket" {
  source                 = "./modules/private-bucket"
  name                   = "${local.name}-trail-${local.account}"
  kms_key_arn            = aws_kms_key.environment.arn
  expire_after_days      = var.log_retention_days
  noncurrent_days        = 30
  extra_policy_documents = [data.aws_iam_policy_document.trail_writes.json]
}

data "aws_iam_policy_document" "trail_writes" {
  statement {
    sid       = "CloudTrailWrites"
    actions   = ["s3:GetBucketAcl", "s3:PutObject"]
    resources = [local.trail_bucket_arn, "${local.trail_bucket_arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }
  }
}

locals {
  # Known before the bucket exists: its policy cannot depend on the module's own output.
  trail_bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${local.name}-trail-${local.account}"
}
