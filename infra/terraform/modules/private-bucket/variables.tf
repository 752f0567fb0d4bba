variable "name" {
  description = "Bucket name (globally unique)"
  type        = string
}

variable "kms_key_arn" {
  description = "The environment's key: default encryption of every object"
  type        = string
}

variable "access_log_bucket" {
  description = "Bucket receiving this one's access logs (null: this is the log bucket)"
  type        = string
  default     = null
}

variable "expire_after_days" {
  description = "Days after which current objects expire (null: kept)"
  type        = number
  default     = null
}

variable "noncurrent_days" {
  description = "Days an overwritten or deleted object's old version is kept"
  type        = number
}

variable "extra_policy_documents" {
  description = "More bucket policy statements (JSON documents), merged with the TLS-only one"
  type        = list(string)
  default     = []
}
