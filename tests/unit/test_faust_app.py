"""Faust runs the app (CLI, web server, lifecycle, signals) and starts no Kafka client of its own: the batch
loops own the app's Kafka traffic. On a real broker: tests/integration/test_kafka_footprint.py."""

from __future__ import annotations

from streamer.app.faust_app import create_app
from streamer.config import Settings

FAUST_KAFKA_SERVICES = {"Consumer", "Producer", "LeaderAssignor", "ReplyConsumer", "Conductor", "TableManager"}


class TestFaustApp:
    def test_the_worker_starts_faust_web_server_and_none_of_its_kafka_services(self) -> None:
        app = create_app(Settings())
        started = {type(service).__name__ for service in app.boot_strategy.server()}
        assert "Web" in started
        assert not started & FAUST_KAFKA_SERVICES
