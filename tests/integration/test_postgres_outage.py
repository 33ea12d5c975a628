"""A Postgres outage delays the audit but never decisions, and never loses an audit row; the worker stays ready
(Postgres is reported by a gauge, not a readiness gate)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from streamer.local.produce import publish
from streamer.local.stack import BrokerKind, LocalStack
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from tests.conftest import REPO
from tests.integration.helpers import eventually, readiness, scrape, wait_until_consumed

pytestmark = pytest.mark.integration


@pytest.fixture
def own_stack(broker: BrokerKind, tmp_path: Path) -> Iterator[LocalStack]:
    """Servers of this test's own: it stops Postgres, which would disturb every other test."""
    with LocalStack(tmp_path, broker=broker) as stack:
        yield stack


def _audit_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT decision_id FROM decision_audit")]


def test_decisions_flow_while_postgres_is_down_and_the_audit_catches_up_after(own_stack: LocalStack) -> None:
    worker = own_stack.start_worker(STREAMER_AUDIT_RETRY_MAX_S="1", STREAMER_MODEL_DIR=str(REPO / "onnx_models"))
    lag, up = "streamer_audit_lag_events", "streamer_audit_database_up"
    settings = own_stack.settings()
    factory = ApplicationFactory(seed=21)
    decisions = TopicReader(settings, settings.decision_topic)
    try:
        publish(settings, list(factory.mixed(300, 0)))
        assert decisions.read_until(lambda r: len(r) >= 300, 60)
        wait_until_consumed(settings, settings.audit_group(), decisions.records)

        own_stack.postgres.stop()
        publish(settings, list(factory.mixed(1200, 0)))
        assert decisions.read_until(lambda r: len(r) >= 1500, 60), "decisions stopped while Postgres was down"
        with pytest.raises(psycopg.OperationalError):
            _audit_ids(own_stack.postgres.url)
        eventually(lambda: scrape(worker.web_port)[lag] >= 1200, 30, "audit lag shows the decisions not in Postgres")
        eventually(lambda: scrape(worker.web_port)[up] == 0, 15, "the gauge reports the database down")
        assert readiness(worker.web_port) == 200, "a Postgres outage took the worker out of rotation"

        own_stack.postgres.start()
        wait_until_consumed(settings, settings.audit_group(), decisions.records, timeout_s=90)
        ids = _audit_ids(own_stack.postgres.url)
        expected = {json.loads(m.value() or b"{}")["decision_id"] for m in decisions.records}
        assert len(ids) == len(set(ids)) == 1500
        assert set(ids) == expected
        eventually(lambda: scrape(worker.web_port)[lag] == 0, 30, "audit lag drains to zero")
        eventually(lambda: scrape(worker.web_port)[up] == 1, 15, "the gauge reports the database up again")
        assert readiness(worker.web_port) == 200
    finally:
        decisions.close()
