# Production of the Consciousness Engine on AWS. One configuration, one state and
# one variable set per environment:
#   terraform init -backend-config=environments/production.backend.hcl
#   terraform apply -var-file=environments/production.tfvars
terraform {
  required_version = ">= 1.9.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0" # not resolved here: no registry is reachable from this machine
    }
  }
  # Bucket, key and region come from environments/<env>.backend.hcl: one state per environment.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      project     = "consciousness-engine"
      environment = var.environment
      managed-by  = "terraform"
    }
  }
}
