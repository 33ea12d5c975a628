# The worker's three topics and exactly the ACLs it (and KEDA, for lag) needs: the same set as the
# Strimzi KafkaUser in k8s/overlays/prod/kafkauser.yaml. Topics are not created by the worker in
# production (STREAMER_CREATE_TOPICS is off), so their replication and retention come from here.
# Both are data in locals.tf.

resource "kafka_topic" "this" {
  for_each = local.topics

  name = each.value.name
  # Straight from the variables, so checkov sees them (it does not expand this for_each).
  partitions         = var.partitions
  replication_factor = var.replication_factor
  config             = each.value.config
}

resource "kafka_acl" "worker" {
  for_each = local.worker_acl_entries

  acl_principal                = var.kafka_principal
  acl_host                     = var.acl_host
  acl_operation                = each.value.operation
  acl_permission_type          = "Allow"
  resource_type                = each.value.resource_type
  resource_name                = each.value.resource_name
  resource_pattern_type_filter = each.value.pattern
}
