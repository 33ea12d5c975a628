# A root module pins exact provider versions (the module allows a minor range). No .terraform.lock.hcl is
# committed: it is written by `terraform init`, which has never run for this configuration (see README).
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    kafka = {
      source  = "Mongey/kafka"
      version = "= 0.13.1"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "= 1.26.0"
    }
  }

  # State: keep it in a remote backend with encryption and locking, e.g.
  # backend "s3" { bucket = "...", key = "streamer/terraform.tfstate", encrypt = true, use_lockfile = true }
  # It holds no password (all are write-only or ephemeral), but it does hold names and topology.
}
