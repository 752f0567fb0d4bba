output "id" {
  description = "Bucket name"
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "Bucket ARN"
  value       = aws_s3_bucket.this.arn
}

output "policy" {
  description = "The bucket policy in force (CloudTrail waits for it)"
  value       = aws_s3_bucket_policy.this.id
}
