# State of dev only: one state per environment, locked while applied.
bucket       = "consciousness-engine-terraform-state"
key          = "dev/terraform.tfstate"
region       = "eu-west-3"
encrypt      = true
use_lockfile = true
