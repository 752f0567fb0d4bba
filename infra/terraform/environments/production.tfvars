# production: its own variable set, its own state (environments/production.backend.hcl).
environment        = "production"
region             = "eu-west-3"
vpc_id             = "vpc-REPLACE-production"
private_subnet_ids = ["subnet-REPLACE-production-a", "subnet-REPLACE-production-b"]
admin_cidrs        = ["10.0.0.0/16"]
db_instance_class  = "db.r6g.large"
db_multi_az        = true
