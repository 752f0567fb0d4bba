variable "environment" {
  description = "dev, staging or production: names every resource and selects its state"
  type        = string
  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

variable "region" {
  description = "AWS region of the environment"
  type        = string
}

variable "vpc_id" {
  description = "VPC the environment runs in (made by the network team's own configuration)"
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two zones) for EKS nodes and RDS"
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "at least two private subnets, in two zones."
  }
}

variable "admin_cidrs" {
  description = "Networks allowed to reach the private Kubernetes API endpoint (VPN, bastion)"
  type        = list(string)
}

variable "kubernetes_version" {
  description = "EKS control plane version (the suite runs the same minor on kind)"
  type        = string
  default     = "1.34"
}

variable "db_instance_class" {
  description = "RDS instance class: production is sized for performance, dev is not"
  type        = string
}

variable "db_multi_az" {
  description = "A standby in a second zone"
  type        = bool
}

variable "log_retention_days" {
  description = "Days control-plane, audit and trail logs are kept (13 months for capacity and audit)"
  type        = number
  default     = 400
}
