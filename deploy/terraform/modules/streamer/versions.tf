# Terraform 1.11 for write-only attributes (the roles' passwords never reach the state); the providers are
# pinned to a minor range here and exactly in the root module (examples/managed).
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    kafka = {
      source  = "Mongey/kafka"
      version = "~> 0.13.1"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "~> 1.26.0" # 1.26.0 added password_wo
    }
  }
}
