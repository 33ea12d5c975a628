# Names and ACLs as data, apart from the resources: tests/deploy/test_terraform.py evaluates this file
# (with variables.tf) without the providers, and compares it with the KafkaUser and the worker's settings.

locals {
  # Fixed: migration 004 creates (if missing) and grants to this name.
  worker_group_role = "streamer_worker"

  # Each topic's name and configs: the same configs as k8s/base/kafka/topics.yaml with the prod
  # overlay's replication (the worker creates no topic in production: STREAMER_CREATE_TOPICS is off).
  topic_names = {
    applications = { name = var.applications_topic, retention_ms = var.retention_ms.applications }
    decisions    = { name = var.decisions_topic, retention_ms = var.retention_ms.decisions }
    dead_letters = { name = var.dead_letter_topic, retention_ms = var.retention_ms.dead_letters }
  }
  topics = {
    for key, topic in local.topic_names : key => {
      name = topic.name
      config = {
        "cleanup.policy"      = "delete"
        "retention.ms"        = tostring(topic.retention_ms)
        "min.insync.replicas" = tostring(var.min_insync_replicas)
      }
    }
  }

  # One entry per Kafka resource (topic, group, transactional id); tests/deploy/test_terraform.py compares this list with the KafkaUser's acls.
  worker_acls = [
    # The scorer reads applications; KEDA describes the topic for its lag.
    { resource_type = "Topic", resource_name = var.applications_topic, pattern = "Literal", operations = ["Read", "Describe"] },
    # The scorer writes decisions; the audit reads them.
    { resource_type = "Topic", resource_name = var.decisions_topic, pattern = "Literal", operations = ["Read", "Write", "Describe"] },
    # Both stages dead-letter what they refuse.
    { resource_type = "Topic", resource_name = var.dead_letter_topic, pattern = "Literal", operations = ["Write", "Describe"] },
    # The two consumer groups (KEDA and the audit-lag metric describe them).
    { resource_type = "Group", resource_name = var.scorer_group, pattern = "Literal", operations = ["Read", "Describe"] },
    { resource_type = "Group", resource_name = var.audit_group, pattern = "Literal", operations = ["Read", "Describe"] },
    # exactly_once: each worker's transactional id starts with the prefix.
    { resource_type = "TransactionalID", resource_name = var.transactional_id_prefix, pattern = "Prefixed", operations = ["Write", "Describe"] },
  ]

  # kafka_acl holds one operation: one resource per (resource, operation), keyed stably by both.
  worker_acl_entries = {
    for entry in flatten([
      for acl in local.worker_acls : [
        for operation in acl.operations : merge(acl, { operation = operation })
      ]
    ]) : "${entry.resource_type}:${entry.resource_name}:${entry.operation}" => entry
  }
}
