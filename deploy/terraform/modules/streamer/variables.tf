# Defaults are the worker's own defaults (streamer/config.py) and the prod overlay's (k8s/): a test
# (tests/deploy/test_terraform.py) keeps them equal.

# --- Kafka: topics -----------------------------------------------------------------------------------

variable "applications_topic" {
  description = "Topic of LoanApplication events (STREAMER_INPUT_TOPIC)."
  type        = string
  default     = "loan-applications"
}

variable "decisions_topic" {
  description = "Topic of Decision events (STREAMER_DECISION_TOPIC); the audit stage reads it too."
  type        = string
  default     = "loan-decisions"
}

variable "dead_letter_topic" {
  description = "Dead-letter topic of both stages (STREAMER_DLQ_TOPIC)."
  type        = string
  default     = "loan-applications-dlq"
}

variable "partitions" {
  description = "Partitions of each topic: the most workers that can share the load (deploy/README.md, capacity plan). Partitions can only grow."
  type        = number
  default     = 8

  validation {
    condition     = var.partitions >= 1 && floor(var.partitions) == var.partitions
    error_message = "partitions must be a whole number >= 1."
  }
}

variable "replication_factor" {
  description = "Copies of each partition. 3 with min_insync_replicas 2: one broker lost loses nothing and blocks nothing."
  type        = number
  default     = 3
}

variable "min_insync_replicas" {
  description = "min.insync.replicas of each topic; the worker produces with acks=all."
  type        = number
  default     = 2

  validation {
    condition     = var.min_insync_replicas >= 1 && var.min_insync_replicas < var.replication_factor
    error_message = "min_insync_replicas must be >= 1 and below replication_factor, or one broker down blocks every write."
  }
}

variable "retention_ms" {
  description = "retention.ms of each topic. Decisions must outlast the longest PostgreSQL outage you plan for (the audit reads them); dead letters stay long enough to be looked at."
  type = object({
    applications = number
    decisions    = number
    dead_letters = number
  })
  default = {
    applications = 604800000  # 7 days
    decisions    = 604800000  # 7 days
    dead_letters = 2592000000 # 30 days
  }
}

# --- Kafka: the worker's ACLs ------------------------------------------------------------------------

variable "kafka_principal" {
  description = "The worker's Kafka principal, e.g. User:streamer for SCRAM user streamer. The user itself is made by the Kafka service (its SCRAM credentials), not here."
  type        = string
  default     = "User:streamer"

  validation {
    condition     = startswith(var.kafka_principal, "User:")
    error_message = "kafka_principal must look like User:<name>."
  }
}

variable "acl_host" {
  description = "Host the worker's ACLs allow; * for any (workers move between nodes)."
  type        = string
  default     = "*"
}

variable "scorer_group" {
  description = "The scorer's consumer group: <STREAMER_APP_ID>-scorer."
  type        = string
  default     = "streamer-scorer"
}

variable "audit_group" {
  description = "The audit stage's consumer group: <STREAMER_APP_ID>-audit."
  type        = string
  default     = "streamer-audit"
}

variable "transactional_id_prefix" {
  description = "Prefix of the scorer's transactional ids (exactly_once): <STREAMER_APP_ID>-scorer-<host name>-<web port>, or an explicit STREAMER_TRANSACTIONAL_ID that keeps this prefix."
  type        = string
  default     = "streamer-scorer-"
}

# --- PostgreSQL --------------------------------------------------------------------------------------

variable "database_name" {
  description = "The audit database (the path of STREAMER_DATABASE_URL)."
  type        = string
  default     = "streamer"
}

variable "create_database" {
  description = "Create the database, owned by owner_role. false: it exists already (then make owner_role its owner yourself)."
  type        = bool
  default     = true
}

variable "owner_role" {
  description = "The tables' owner: runs `streamer migrate` and `streamer audit-partitions` (the migrate Job's secret)."
  type        = string
  default     = "streamer_owner"
}

variable "owner_can_create_databases" {
  description = "CREATEDB for owner_role, which `streamer audit-restore` needs (or run the restore as the DBA)."
  type        = bool
  default     = false
}

variable "worker_login_role" {
  description = "The worker's login role, a member of streamer_worker (STREAMER_DATABASE_URL's user)."
  type        = string
  default     = "streamer_app"
}

variable "worker_connection_limit" {
  description = "Connections the worker's login role may hold (-1: no limit). Each worker holds a small pool."
  type        = number
  default     = -1
}

# Passwords are ephemeral: Terraform never writes them to a plan or the state (password_wo). Pass them
# with TF_VAR_owner_password / TF_VAR_worker_password, never in a file. Bump the version to rotate.
variable "owner_password" {
  description = "Password of owner_role (write-only: kept in no plan or state)."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "owner_password_version" {
  description = "Change it to set owner_password again (a write-only value cannot be compared)."
  type        = string
  default     = "1"
}

variable "worker_password" {
  description = "Password of worker_login_role (write-only: kept in no plan or state)."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "worker_password_version" {
  description = "Change it to set worker_password again (a write-only value cannot be compared)."
  type        = string
  default     = "1"
}
