"""9. Leader failover on a 3-broker Apache Kafka cluster (replication factor 3, min.insync.replicas 2), as
production runs it: the broker leading input and decision partitions is SIGKILLed under load, and brought
back after a while.

Nothing is lost, the worker is not restarted, no partition is re-read from the beginning (the scorer's
committed offsets never go backwards), and decisions resume within the time librdkafka needs to find the
new leaders. That time is measured and reported: from the kill until the scorer has committed past where
it stood on every input partition the dead broker led. The cluster fences a dead broker after 3 s
(`broker.session.timeout.ms`; Kafka's default is 9 s, so expect about 6 s more in production).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streamer.audit.migrations import migrate
from streamer.config import Settings
from streamer.local.apache_kafka import ensure_class_archive
from streamer.local.embedded import EmbeddedPostgres
from streamer.local.kafka_cluster import ApacheKafkaCluster
from streamer.local.kafka_jars import ensure_kafka_jars
from streamer.local.stack import BrokerKind, WorkerProcess
from streamer.runtime.topics import ensure_topics
from tests.conftest import KAFKA_ONLY, REPO
from tests.faults.conftest import Sizes
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic
from tests.integration.helpers import committed

pytestmark = [pytest.mark.faults, pytest.mark.integration, KAFKA_ONLY]

RATE = 300.0
PARTITIONS = 4
RESUME_BOUND_S = 30.0  # only a worker that never finds the new leaders takes this long


@dataclass
class Cluster:
    kafka: ApacheKafkaCluster
    postgres_url: str
    settings: Settings
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)


@pytest.fixture
def cluster(broker: BrokerKind, tmp_path: Path) -> Iterator[Cluster]:
    libs = ensure_kafka_jars()
    kafka = ApacheKafkaCluster(libs, tmp_path / "kafka", n=3, class_archive=ensure_class_archive(libs))
    postgres = EmbeddedPostgres(tmp_path / "pg")
    workers: list[WorkerProcess] = []
    try:
        kafka.start()
        postgres.start()
        migrate(postgres.url)
        settings = Settings(kafka_bootstrap=kafka.bootstrap, database_url=postgres.url,
                            topic_partitions=PARTITIONS, topic_replication=3, broker_profile="kafka")
        ensure_topics(settings, [settings.input_topic, settings.decision_topic, settings.dlq_topic])
        env = {
            **os.environ, "STREAMER_KAFKA_BOOTSTRAP": kafka.bootstrap, "STREAMER_DATABASE_URL": postgres.url,
            "STREAMER_BROKER_PROFILE": "kafka", "STREAMER_TOPIC_PARTITIONS": str(PARTITIONS),
            "STREAMER_TOPIC_REPLICATION": "3", "STREAMER_MODEL_DIR": str(REPO / "onnx_models"),
            "STREAMER_DATA_DIR": str(tmp_path / "faust"), "STREAMER_LOG_FORMAT": "json",
        }
        yield Cluster(kafka, postgres.url, settings, env, workers)
    finally:
        for worker in workers:
            worker.stop()
        kafka.stop()
        postgres.stop()


class OffsetWatch:
    """Samples the scorer group's committed offsets every half second, and notes any that went backwards."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys = [(settings.input_topic, p) for p in range(PARTITIONS)]
        self.latest: dict[tuple[str, int], int] = {}
        self.backwards: list[tuple[tuple[str, int], int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OffsetWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def beyond(self, offsets: dict[int, int]) -> Callable[[], bool]:
        """True once the committed offset of each given input partition has passed the given offset."""
        topic = self._settings.input_topic
        return lambda: all(self.latest.get((topic, p), -1) > o for p, o in offsets.items())

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                now = committed(self._settings, self._settings.scorer_group(), self._keys)
            except Exception:  # a broker may be down right now; the next sample asks again
                continue
            for key, offset in now.items():
                before = self.latest.get(key, -1)
                if 0 <= offset < before:
                    self.backwards.append((key, before, offset))
                self.latest[key] = max(before, offset)


def _led_by(kafka: ApacheKafkaCluster, topic: str, node: int) -> list[int]:
    return [p for p in range(PARTITIONS) if kafka.leader(topic, p) == node]


def test_killing_the_leader_under_load_loses_nothing_and_decisions_resume_once_new_leaders_are_found(
    cluster: Cluster, size: Sizes, tmp_path: Path
) -> None:
    s, kafka = cluster.settings, cluster.kafka
    log = tmp_path / "worker.log"
    worker = spawn(cluster.env, log, cluster.workers)
    assert worker.process is not None
    pid = worker.process.pid
    payloads = synthetic(int(RATE * (size.failover_down_s + 10) * size.failover_kills), 100, seed=109)
    load = TrackedPublisher(s, payloads, rate_per_s=RATE).start()
    failovers = []
    with OffsetWatch(s) as watch:
        for _ in range(size.failover_kills):
            _until(watch.beyond({p: 0 for p in range(PARTITIONS)}), 60, "progress on every input partition")
            victim = kafka.leader(s.input_topic, 0)
            inputs, decisions = _led_by(kafka, s.input_topic, victim), _led_by(kafka, s.decision_topic, victim)
            at_kill = {p: watch.latest.get((s.input_topic, p), 0) for p in inputs}
            killed = time.monotonic()
            kafka.kill(victim)
            _until(watch.beyond(at_kill), RESUME_BOUND_S, "decisions on the dead leader's partitions")
            resumed_s = time.monotonic() - killed
            time.sleep(max(0.0, size.failover_down_s - resumed_s))  # the rest of the outage
            kafka.restart(victim)
            _until(_in_sync(kafka, s.input_topic, victim), 60, "the restarted broker back in sync")
            failovers.append({"killed_node": victim, "led_input_partitions": inputs,
                              "led_decision_partitions": decisions, "resumed_s": round(resumed_s, 2),
                              "down_s": round(time.monotonic() - killed, 1)})
        load.join()
        ledger = settle(s, load.ends(), timeout_s=180)
    account = check_promise(ledger, payloads, load.positions, cluster.postgres_url)
    events = log_events(log)

    assert worker.process.poll() is None and worker.process.pid == pid, "the worker restarted"
    assert account.audit_rows == account.valid
    assert not watch.backwards, f"committed offsets went backwards (re-read): {watch.backwards}"
    assert events["broker_lost_log"] == 0 and events["partition_stalled"] == 0, "a Tansu workaround ran on Kafka"
    report(size.name, "leader-failover", {**account.as_dict(), "failovers": failovers,
                                          "worker_events": {k: events[k] for k in (
                                              "batch_failed", "producer_renewed", "commit_failed",
                                              "commit_on_revoke_failed")}})


def _in_sync(kafka: ApacheKafkaCluster, topic: str, node: int) -> Callable[[], bool]:
    return lambda: node in kafka.isr(topic, 0)


def _until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s}s"
        time.sleep(0.1)
