"""A worker creates topics only when asked (`STREAMER_CREATE_TOPICS`, on in the embedded stack): on a
production cluster topics are provisioned with their replication, retention and min.insync.replicas, and
a worker that made them with its own defaults would hide the mistake of a missing one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.runtime.topics import missing_topics
from tests.conftest import KAFKA_ONLY, Isolated
from tests.faults.harness import log_events
from tests.integration.helpers import cluster_topics, eventually

pytestmark = [pytest.mark.integration, KAFKA_ONLY]  # Kafka's brokers are what production provisions topics on


def _unavailable(log: Path) -> set[str]:
    """The loops that logged librdkafka's 'Subscribed topic not available'."""
    records = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
    return {r["loop"] for r in records
            if r.get("event") == "consumer_error" and "Subscribed topic not available" in r.get("error", "")}


def test_a_worker_not_asked_to_create_topics_creates_none_and_names_the_missing_ones(isolated: Isolated) -> None:
    s = isolated.settings
    topics = [s.input_topic, s.decision_topic, s.dlq_topic]
    assert missing_topics(s, topics) == topics
    before = cluster_topics(s)
    worker = isolated.start_worker(wait=False, STREAMER_CREATE_TOPICS="false")
    log = isolated.run_dir / "worker.log"

    eventually(lambda: log.exists() and log_events(log)["topics_missing"] == 1, 60, "a topics_missing line")
    missing = next(json.loads(line) for line in log.read_text().splitlines() if '"topics_missing"' in line)
    # both loops subscribed, and librdkafka says their topics are not there: asking did not create them
    eventually(lambda: {"scorer", "audit"} <= _unavailable(log), 60, "both loops report their topic missing")

    assert missing["topics"] == topics and missing["level"] == "error"
    assert cluster_topics(s) == before, "a topic was created (Faust's own leader topic?)"
    assert worker.process is not None and worker.process.poll() is None, "the worker exited"
    assert not worker.ready()
