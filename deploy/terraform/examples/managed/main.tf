# The module call alone (providers.tf configures the providers from variables): tests/deploy/test_terraform.py
# validates this file with variables.tf against the module's variables without the providers.

module "streamer" {
  source = "../../modules/streamer"

  kafka_principal = "User:${var.worker_kafka_username}"

  owner_password          = var.owner_password
  owner_password_version  = var.password_version
  worker_password         = var.worker_password
  worker_password_version = var.password_version
}
