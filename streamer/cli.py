"""Subcommands added to Faust's CLI: `streamer local | demo | produce | migrate` (plus Faust's own,
such as `worker`). Each works as `streamer <cmd>` and `python -m streamer <cmd>`."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import click
from faust.cli import AppCommand, option

from streamer.app import app, settings
from streamer.audit import partitions
from streamer.audit.migrations import migrate as apply_migrations
from streamer.demo import run_demo
from streamer.local import LocalStack
from streamer.produce import publish
from streamer.synthetic import ApplicationFactory

__all__ = ["app", "audit_partitions", "demo", "local", "migrate", "produce", "settings"]


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


@app.command(
    option("--count", type=int, default=1000, show_default=True, help="Applications to publish."),
    option("--rate", type=float, default=0.0, help="Per second; 0 publishes as fast as possible."),
    option("--invalid-every", type=int, default=0, help="Make every Nth application invalid (0: none)."),
    option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic data."),
)
async def produce(self: AppCommand, count: int, rate: float, invalid_every: int, seed: int) -> None:
    """Publish synthetic loan applications to STREAMER_INPUT_TOPIC."""
    payloads = ApplicationFactory(seed).mixed(count, invalid_every)
    sent = await asyncio.to_thread(publish, settings, payloads, rate or None)
    print(f"published {sent} applications to {settings.input_topic} on {settings.kafka_bootstrap}")


# Faust passes the command object first when the handler takes parameters.
@app.command(
    option("--kafka-port", type=int, default=9092, show_default=True, help="Port of the embedded broker."),
    option("--data-dir", type=click.Path(file_okay=False), default=None, help="Keep data here (default: a temp dir)."),
)
async def local(self: AppCommand, kafka_port: int, data_dir: str | None) -> None:
    """Run the embedded broker + Postgres + a worker until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="streamer-local-") as tmp:
        stack = LocalStack(Path(data_dir or tmp), kafka_port=kafka_port)
        try:
            stack.start()
            print(f"STREAMER_KAFKA_BOOTSTRAP={stack.kafka.bootstrap}", flush=True)
            print(f"STREAMER_DATABASE_URL={stack.postgres.url}", flush=True)
            worker = stack.start_worker(log_name=None, wait=False)
            while worker.process is not None and worker.process.poll() is None:
                await asyncio.sleep(0.5)
        finally:
            stack.stop()


@app.command(
    option("--count", type=int, default=10_000, show_default=True, help="Applications to publish."),
)
async def demo(self: AppCommand, count: int) -> None:
    """Score `count` synthetic applications (1 % invalid) on the embedded servers and print a summary."""
    summary = await asyncio.to_thread(run_demo, count)
    if summary.accounted < summary.applications or summary.audit_rows < summary.valid:
        sys.exit("demo: not every application was accounted for")
