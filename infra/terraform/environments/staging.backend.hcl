# State of staging only: one state per environment, locked while applied.
bucket       = "consciousness-engine-terraform-state"
key          = "staging/terraform.tfstate"
region       = "eu-west-3"
encrypt      = true
use_lockfile = true
