output "topics" {
  description = "The topics' names, by role."
  value       = { for key, topic in kafka_topic.this : key => topic.name }
}

output "kafka_principal" {
  description = "The principal the worker's ACLs allow."
  value       = var.kafka_principal
}

output "database_name" {
  description = "The audit database."
  value       = var.create_database ? postgresql_database.audit[0].name : var.database_name
}

output "owner_role" {
  description = "The role that runs `streamer migrate` (the migrate Job's STREAMER_DATABASE_URL user)."
  value       = postgresql_role.owner.name
}

output "worker_login_role" {
  description = "The worker's login role (STREAMER_DATABASE_URL's user), a member of streamer_worker."
  value       = postgresql_role.worker_login.name
}

# What the worker's ConfigMap must say for these topics; every key is a streamer setting.
output "worker_settings" {
  description = "STREAMER_* settings matching this module's Kafka names."
  value = {
    STREAMER_INPUT_TOPIC       = kafka_topic.this["applications"].name
    STREAMER_DECISION_TOPIC    = kafka_topic.this["decisions"].name
    STREAMER_DLQ_TOPIC         = kafka_topic.this["dead_letters"].name
    STREAMER_TOPIC_PARTITIONS  = tostring(var.partitions)
    STREAMER_TOPIC_REPLICATION = tostring(var.replication_factor)
  }
}
