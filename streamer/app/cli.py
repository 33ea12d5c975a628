"""The worker's own subcommands on Faust's CLI: `streamer migrate | audit-partitions` (plus Faust's own,
such as `worker`). Each works as `streamer <cmd>` and `python -m streamer <cmd>`."""

from __future__ import annotations

from faust.cli import AppCommand, option

from streamer.app.faust_app import app, settings
from streamer.audit import partitions
from streamer.audit.migrations import migrate as apply_migrations

__all__ = ["app", "audit_partitions", "migrate", "settings"]


@app.command()
async def migrate() -> None:
    """Apply the SQL migrations to STREAMER_DATABASE_URL and create the coming months' audit partitions."""
    applied = apply_migrations(settings.database_url.get_secret_value())
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@app.command(
    option("--months-ahead", type=int, default=3, show_default=True, help="Create monthly partitions this far out."),
    option("--retention-months", type=int, default=25, show_default=True, help="Keep this many whole months."),
    option("--apply-retention", is_flag=True, default=False, help="Drop expired partitions (else only list them)."),
)
async def audit_partitions(self: AppCommand, months_ahead: int, retention_months: int, apply_retention: bool) -> None:
    """Maintain decision_audit's monthly partitions (run monthly, as the migration role)."""
    url = settings.database_url.get_secret_value()
    print(f"partitions created: {partitions.ensure_ahead(url, months_ahead)}")
    plan = partitions.retention(url, retention_months, apply=apply_retention)
    verb = "dropped" if apply_retention else "expired (run with --apply-retention to drop)"
    print(f"{verb}: {', '.join(plan.expired) or 'none'}; keeping months from {plan.cutoff}")
