"""The subcommands that talk to Postgres only: `streamer migrate | audit-partitions | audit-restore | decisions`.

Plain click, with no Faust app behind them: building one builds its Kafka credentials, which read the CA
bundle of STREAMER_SSL_CA_LOCATION, and the migrate Job and the partitions CronJob have no business with
Kafka (issue 15). `streamer.__main__` runs these before it imports Faust; an import-linter contract keeps
Faust and the Kafka clients out of this module.
"""

from __future__ import annotations

from pathlib import Path

import click

from streamer.app.decisions_cli import decisions
from streamer.audit import health, partitions, restore
from streamer.audit.migrations import migrate as apply_migrations
from streamer.config import Settings

__all__ = ["COMMANDS", "audit_partitions", "audit_restore", "database_cli", "decisions", "migrate"]


@click.command()
def migrate() -> None:
    """Apply the SQL migrations to STREAMER_DATABASE_URL and create the coming months' audit partitions."""
    applied = apply_migrations(Settings().database_url.get_secret_value())
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@click.command("audit-partitions")
@click.option(
    "--months-ahead", type=int, default=partitions.MONTHS_AHEAD, show_default=True,
    help="Create monthly partitions this far out.",
)
@click.option("--retention-months", type=int, default=25, show_default=True, help="Keep this many whole months.")
@click.option("--apply-retention", is_flag=True, default=False, help="Drop expired partitions (else only list them).")
def audit_partitions(months_ahead: int, retention_months: int, apply_retention: bool) -> None:
    """Maintain decision_audit's monthly partitions (run monthly, as the migration role)."""
    url = Settings().database_url.get_secret_value()
    print(f"partitions created: {partitions.ensure_ahead(url, months_ahead)}")
    # Rows no monthly partition covers (alert StreamerAuditDefaultPartitionNotEmpty; runbook in deploy/README.md)
    print(f"rows in the DEFAULT partition: {health.default_partition_rows(url)}")
    plan = partitions.retention(url, retention_months, apply=apply_retention)
    verb = "dropped" if apply_retention else "expired (run with --apply-retention to drop)"
    print(f"{verb}: {', '.join(plan.expired) or 'none'}; keeping months from {plan.cutoff}")


@click.command("audit-restore")
@click.argument("dump", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--pg-restore", default="pg_restore", show_default=True, help="The pg_restore program to run.")
def audit_restore(dump: Path, pg_restore: str) -> None:
    """Restore the audit database from DUMP (pg_dump --format=custom), as the owner, with the workers stopped."""
    kept = restore.restore(Settings().database_url.get_secret_value(), dump, pg_restore)
    print(f"restored; the database before the restore is kept as {kept}")


COMMANDS: dict[str, click.Command] = {
    "migrate": migrate, "audit-partitions": audit_partitions, "audit-restore": audit_restore, "decisions": decisions,
}
database_cli = click.Group("streamer", commands=COMMANDS, help="The commands that talk to Postgres only.")
