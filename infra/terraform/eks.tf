# The Kubernetes cluster: private API endpoint only, Secrets envelope-encrypted
# with the environment's KMS key (R4.2), every control-plane log type kept (R4.5).
resource "aws_eks_cluster" "engine" {
  name                      = local.name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = false
    security_group_ids      = [aws_security_group.api.id]
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.environment.arn
    }
  }

  access_config {
    authentication_mode = "API"
  }

  depends_on = [aws_cloudwatch_log_group.cluster]
}

# EKS writes its control-plane logs here; created first so retention and the key apply.
resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${local.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.environment.arn
}

resource "aws_security_group" "api" {
  name        = "${local.name}-api"
  description = "Kubernetes API endpoint: HTTPS from the admin networks only"
  vpc_id      = var.vpc_id

  ingress {
    description = "HTTPS to the Kubernetes API from the admin networks"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.admin_cidrs
  }

  egress {
    description = "HTTPS to the nodes' kubelets and webhooks inside the VPC"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.environment.cidr_block]
  }
}

data "aws_vpc" "environment" {
  id = var.vpc_id
}

resource "aws_iam_role" "cluster" {
  name               = "${local.name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.eks_assume.json
}

data "aws_iam_policy_document" "eks_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}
