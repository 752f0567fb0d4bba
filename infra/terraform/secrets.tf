# The engine's own secrets (token signing key, field-encryption key) live in
# Secrets Manager under the environment's key (R4.3); the pods read them
# through the cluster's Secrets, which EKS encrypts with the same key.
resource "aws_secretsmanager_secret" "engine" {
  # checkov:skip=CKV2_AWS_57:the engine reads one signing key and one data key today; rotating
  # them needs the engine to accept two during the change (README: known gaps)
  for_each                = toset(["jwt-key", "data-key"])
  name                    = "${local.name}/${each.key}"
  description             = "engine ${each.key} of ${var.environment}"
  kms_key_id              = aws_kms_key.environment.arn
  recovery_window_in_days = 30
}
