# The environment's bucket: release evidence bundles and database exports; its
# access is logged to the trail's bucket.
module "engine_bucket" {
  source            = "./modules/private-bucket"
  name              = "${local.name}-${local.account}"
  kms_key_arn       = aws_kms_key.environment.arn
  access_log_bucket = module.trail_bucket.id
  noncurrent_days   = 400
}
