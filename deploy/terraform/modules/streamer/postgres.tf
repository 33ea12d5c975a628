# Who owns what in PostgreSQL:
# - here (Terraform): the roles, the worker's membership in streamer_worker, the database and its owner,
#   and CONNECT on it for streamer_worker;
# - the migrations (`streamer migrate`, run as owner_role; streamer/audit/sql/): the tables and functions,
#   USAGE on schema public, every table and function privilege of streamer_worker (004, 006, 008) and the
#   REVOKEs from PUBLIC.
# So no postgresql_grant or postgresql_default_privileges on schemas, tables or functions here:
# postgresql_grant owns all of a role's privileges on its object type and would revoke, on the next apply,
# what a later migration grants (006's UPDATE on audit_consumer_offsets, 008's EXECUTE).

resource "postgresql_role" "owner" {
  name                = var.owner_role
  login               = true
  create_database     = var.owner_can_create_databases
  password_wo         = var.owner_password
  password_wo_version = var.owner_password_version
}

# NOLOGIN: only the privileges the migrations grant, held through membership.
resource "postgresql_role" "worker_group" {
  name  = local.worker_group_role
  login = false
}

resource "postgresql_role" "worker_login" {
  name                = var.worker_login_role
  login               = true
  inherit             = true # the privileges come from streamer_worker
  roles               = [postgresql_role.worker_group.name]
  connection_limit    = var.worker_connection_limit
  password_wo         = var.worker_password
  password_wo_version = var.worker_password_version
}

resource "postgresql_database" "audit" {
  count = var.create_database ? 1 : 0

  name  = var.database_name
  owner = postgresql_role.owner.name
}

# Database-level only, which no migration touches; schema, table and function privileges are theirs.
resource "postgresql_grant" "worker_connect" {
  database    = var.create_database ? postgresql_database.audit[0].name : var.database_name
  role        = postgresql_role.worker_group.name
  object_type = "database"
  privileges  = ["CONNECT"]
}
