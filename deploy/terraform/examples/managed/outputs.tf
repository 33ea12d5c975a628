output "worker_settings" {
  description = "STREAMER_* settings for the worker's ConfigMap (with STREAMER_SECURITY_PROTOCOL=SASL_SSL)."
  value = merge(module.streamer.worker_settings, {
    STREAMER_KAFKA_BOOTSTRAP   = join(",", var.kafka_bootstrap_servers)
    STREAMER_SECURITY_PROTOCOL = "SASL_SSL"
    STREAMER_SASL_MECHANISM    = upper(replace(var.kafka_sasl_mechanism, "scram-sha", "SCRAM-SHA-"))
    STREAMER_SASL_USERNAME     = var.worker_kafka_username
  })
}

output "database_urls_without_passwords" {
  description = "STREAMER_DATABASE_URL of the worker and of the migration, less the passwords you add."
  value = {
    worker    = "postgresql://${module.streamer.worker_login_role}@${var.postgres_host}:${var.postgres_port}/${module.streamer.database_name}?sslmode=${var.postgres_sslmode}"
    migration = "postgresql://${module.streamer.owner_role}@${var.postgres_host}:${var.postgres_port}/${module.streamer.database_name}?sslmode=${var.postgres_sslmode}"
  }
}
