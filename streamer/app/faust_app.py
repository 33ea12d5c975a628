"""The Faust app: CLI, web server (health, metrics), lifecycle and the pipeline service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.app.faust_auth import faust_credentials
from streamer.app.pipeline import PipelineService
from streamer.config import Settings
from streamer.logging import configure as configure_logging

settings = Settings()


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner, whose escape codes would land between JSON log lines,
    and with its data directory made first: Faust creates only the last level of it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None
        Path(self.app.conf.datadir).mkdir(parents=True, exist_ok=True)


class WithoutKafkaClient(BootStrategy):
    """Faust starts its web server, sensors and our Pipeline service, and no Kafka client of its own.

    The app has no agents and no tables: the batch loops own its Kafka traffic. Faust's consumer would only
    add a leader-election topic (`<app_id>-__assignor-__leader`, replication factor 1), a third consumer
    group that rebalances on every scale event and needs ACLs of its own, and its group join before the
    pipeline starts (tests/integration/test_kafka_footprint.py)."""

    enable_kafka = False  # no consumer, leader assignor, reply consumer, topic conductor, tables nor producer


class StreamerApp(faust.App):
    BootStrategy = WithoutKafkaClient


def create_app(s: Settings) -> faust.App:
    return StreamerApp(
        s.app_id,
        # Only for Faust's own commands that start a client on demand (`streamer send`); the worker starts none.
        broker=[f"kafka://{host.strip()}" for host in s.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(s),
        datadir=str(s.data_dir),
        web_port=s.web_port,
        # All interfaces on purpose: probes and scrapes come from outside the pod.
        web_bind="0.0.0.0",  # nosec B104
        autodiscover=False,
        Worker=QuietWorker,
    )


app = create_app(settings)


@app.service
class Pipeline(PipelineService):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)

    async def on_first_start(self) -> None:
        # After Faust set up logging, so our structlog handler is the one that stays.
        configure_logging(settings.log_format, settings.log_level, settings.secret_values())
        await super().on_first_start()


@app.page("/healthz")
async def healthz(web: View, request: Request) -> Response:
    """Liveness: the event loop answers."""
    return web.json({"status": "ok"})


@app.page("/readyz")
async def readyz(web: View, request: Request) -> Response:
    """Readiness: model loaded, both batch loops alive and assigned (possibly nothing: idle by design).

    Postgres is in the body as information, never a gate (streamer/app/readiness.py says why)."""
    pipeline = next((s for s in app._extra_service_instances or [] if isinstance(s, PipelineService)), None)
    if pipeline is None:
        return web.json({"ready": False}, status=503)
    readiness = pipeline.readiness()
    return web.json(readiness.body(), status=200 if readiness.ready else 503)


@app.page("/metrics")
async def prometheus_metrics(web: View, request: Request) -> Response:
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
