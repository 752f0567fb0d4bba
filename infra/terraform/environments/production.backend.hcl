# State of production only: one state per environment, locked while applied.
bucket       = "consciousness-engine-terraform-state"
key          = "production/terraform.tfstate"
region       = "eu-west-3"
encrypt      = true
use_lockfile = true
