# dev: its own variable set, its own state (environments/dev.backend.hcl).
environment        = "dev"
region             = "eu-west-3"
vpc_id             = "vpc-REPLACE-dev"
private_subnet_ids = ["subnet-REPLACE-dev-a", "subnet-REPLACE-dev-b"]
admin_cidrs        = ["10.0.0.0/16"]
db_instance_class  = "db.t4g.medium"
db_multi_az        = false
