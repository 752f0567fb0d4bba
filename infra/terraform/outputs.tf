output "cluster_name" {
  description = "EKS cluster (run the suite with --kubeconfig after aws eks update-kubeconfig)"
  value       = aws_eks_cluster.engine.name
}

output "database_endpoint" {
  description = "Postgres endpoint (TLS required)"
  value       = aws_db_instance.engine.endpoint
}

output "kms_key_arn" {
  description = "The environment's encryption key"
  value       = aws_kms_key.environment.arn
}
