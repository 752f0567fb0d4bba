# Postgres: encrypted storage under the environment's key (R4.2), TLS required on
# every connection (R4.1), never public, its master password kept by Secrets
# Manager (R4.3), backups kept, deletion protected.
resource "aws_db_instance" "engine" {
  identifier                            = local.name
  engine                                = "postgres"
  engine_version                        = "15"
  instance_class                        = var.db_instance_class
  allocated_storage                     = 50
  max_allocated_storage                 = 500
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.environment.arn
  db_name                               = "engine"
  username                              = "engine_admin"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = aws_kms_key.environment.arn
  iam_database_authentication_enabled   = true
  parameter_group_name                  = aws_db_parameter_group.engine.name
  db_subnet_group_name                  = aws_db_subnet_group.engine.name
  vpc_security_group_ids                = [aws_security_group.database.id]
  publicly_accessible                   = false
  multi_az                              = var.db_multi_az
  backup_retention_period               = 35
  deletion_protection                   = true
  copy_tags_to_snapshot                 = true
  auto_minor_version_upgrade            = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.environment.arn
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${local.name}-final"
}

resource "aws_db_parameter_group" "engine" {
  name   = "${local.name}-pg15"
  family = "postgres15"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
}

resource "aws_db_subnet_group" "engine" {
  name       = local.name
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "Postgres: from the cluster's nodes only"
  vpc_id      = var.vpc_id

  ingress {
    description     = "Postgres from the EKS cluster's security group"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_eks_cluster.engine.vpc_config[0].cluster_security_group_id]
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
