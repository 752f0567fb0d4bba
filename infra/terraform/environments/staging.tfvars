# staging: its own variable set, its own state (environments/staging.backend.hcl).
environment        = "staging"
region             = "eu-west-3"
vpc_id             = "vpc-REPLACE-staging"
private_subnet_ids = ["subnet-REPLACE-staging-a", "subnet-REPLACE-staging-b"]
admin_cidrs        = ["10.0.0.0/16"]
db_instance_class  = "db.r6g.large"
db_multi_az        = true
