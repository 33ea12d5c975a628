# Non-secret values go in a *.tfvars file; secrets only in the environment (TF_VAR_<name>), never in a
# file. Every secret is ephemeral: Terraform keeps it out of plans and state.

# --- Managed Kafka (SASL_SSL, SCRAM) -----------------------------------------------------------------

variable "kafka_bootstrap_servers" {
  description = "The managed cluster's SASL_SSL bootstrap brokers, host:port."
  type        = list(string)

  validation {
    condition     = length(var.kafka_bootstrap_servers) > 0
    error_message = "Give at least one bootstrap broker."
  }
}

variable "kafka_sasl_mechanism" {
  description = "The admin's SASL mechanism, as the provider spells it."
  type        = string
  default     = "scram-sha512"

  validation {
    condition     = contains(["scram-sha512", "scram-sha256"], var.kafka_sasl_mechanism)
    error_message = "Use SCRAM (scram-sha512 or scram-sha256) over TLS."
  }
}

variable "kafka_admin_username" {
  description = "A Kafka identity allowed to create topics and ACLs (not the worker's)."
  type        = string
}

variable "kafka_admin_password" {
  description = "Its password: TF_VAR_kafka_admin_password."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "kafka_ca_cert" {
  description = "PEM of the CA that signed the brokers' certificates; null: the system's trusted CAs."
  type        = string
  default     = null
}

variable "worker_kafka_username" {
  description = "The worker's SCRAM user (STREAMER_SASL_USERNAME), made by the Kafka service's own user management."
  type        = string
  default     = "streamer"
}

# --- Managed PostgreSQL ------------------------------------------------------------------------------

variable "postgres_host" {
  description = "The managed server's host name."
  type        = string
}

variable "postgres_port" {
  description = "Its port."
  type        = number
  default     = 5432
}

variable "postgres_admin_username" {
  description = "The service's admin role (not a superuser on managed services), allowed to create roles and databases."
  type        = string
}

variable "postgres_admin_password" {
  description = "Its password: TF_VAR_postgres_admin_password."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "postgres_sslmode" {
  description = "libpq sslmode; verify-full checks the server's name against its certificate."
  type        = string
  default     = "verify-full"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.postgres_sslmode)
    error_message = "The connection must use TLS: require, verify-ca or verify-full."
  }
}

variable "postgres_sslrootcert" {
  description = "Path of the CA bundle for verify-ca/verify-full (the provider's own download, e.g. the cloud's RDS bundle)."
  type        = string
  default     = null
}

variable "postgres_expected_version" {
  description = "The server's major version, so the provider need not ask."
  type        = string
  default     = "16"
}

# --- The passwords of the roles the module creates -----------------------------------------------------

variable "owner_password" {
  description = "Password of streamer_owner: TF_VAR_owner_password."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "worker_password" {
  description = "Password of streamer_app: TF_VAR_worker_password."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "password_version" {
  description = "Bump to set both role passwords again (rotation)."
  type        = string
  default     = "1"
}
