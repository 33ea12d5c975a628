# streamer's topics, ACLs, roles and database on a managed Kafka (SASL_SSL with SCRAM, e.g. Amazon MSK,
# Aiven, Confluent Platform) and a managed PostgreSQL (e.g. Amazon RDS, Cloud SQL, Azure Database).
# The worker's Kafka user is made by the Kafka service (its SCRAM credentials); its ACLs are made here.

provider "kafka" {
  bootstrap_servers = var.kafka_bootstrap_servers
  tls_enabled       = true
  skip_tls_verify   = false
  ca_cert           = var.kafka_ca_cert
  sasl_mechanism    = var.kafka_sasl_mechanism
  sasl_username     = var.kafka_admin_username
  sasl_password     = var.kafka_admin_password
}

provider "postgresql" {
  host             = var.postgres_host
  port             = var.postgres_port
  database         = "postgres"
  username         = var.postgres_admin_username
  password         = var.postgres_admin_password
  sslmode          = var.postgres_sslmode
  sslrootcert      = var.postgres_sslrootcert
  superuser        = false # managed services give no superuser; the provider then avoids what needs one
  expected_version = var.postgres_expected_version
  connect_timeout  = 15
}
