"""The audit stage's writer threads against the real broker and PostgreSQL: each batch's AuditWrite says
when its rows are committed, or why not, and poison still reaches the dead-letter topic."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka import Message
from prometheus_client import REGISTRY

from schemas import decision_id_for
from streamer.audit.sink import AuditSink, AuditUnavailable
from streamer.local.tally import TopicReader
from streamer.runtime.clients import producer_config
from streamer.runtime.publisher import OutboundRecord, Publisher
from streamer.runtime.topics import ensure_topics
from streamer.stages.audit import AuditStage
from tests.conftest import Isolated
from tests.integration.helpers import header_bytes
from tests.integration.test_audit_sink import connection_lost_mid_write

pytestmark = pytest.mark.integration


def _decision(application_id: str) -> bytes:
    return json.dumps({
        "schema_version": 1, "decision_id": decision_id_for(application_id, "m", "1"),
        "application_id": application_id, "outcome": "approve", "probability_of_default": 0.1,
        "model": {"name": "m", "version": "1", "sha256": "b" * 64}, "policy_version": "pd-thresholds-1",
        "reason_codes": [], "decided_at": "2026-11-22T12:00:00Z", "latency_ms": 3.0,
    }).encode()


@pytest.fixture
def decision_records(isolated: Isolated) -> list[Message]:
    """300 decision records and one poison record, as a consumer hands them over."""
    s = isolated.settings
    ensure_topics(s, [s.decision_topic, s.dlq_topic])
    values = [_decision(f"app-{i}") for i in range(300)] + [b'{"not": "a decision"}']
    Publisher(producer_config(s)).publish([OutboundRecord(s.decision_topic, None, v) for v in values])
    reader = TopicReader(s, s.decision_topic)
    assert reader.read_until(lambda records: len(records) >= len(values), 30)
    reader.close()
    return reader.records


@pytest.fixture
def agent(isolated: Isolated) -> Iterator[AuditStage]:
    url = isolated.settings.database_url.get_secret_value()
    audit = AuditStage(lambda: AuditSink(url), Publisher(producer_config(isolated.settings)),
                       isolated.settings.dlq_topic, writers=2,
                       event_source=isolated.settings.cloud_event_source())
    yield audit
    audit.close()


def test_batches_written_at_once_each_report_when_their_rows_are_committed(
    isolated: Isolated, agent: AuditStage, decision_records: list[Message]
) -> None:
    writes = [agent(decision_records[i:i + 50]) for i in range(0, len(decision_records), 50)]
    assert all(write.wait(30) for write in writes)
    assert [write.failure() for write in writes] == [None] * len(writes)
    assert isolated.audit_rows() == 300
    dead = TopicReader(isolated.settings, isolated.settings.dlq_topic)
    assert dead.read_until(lambda records: len(records) == 1, 30)
    dead.close()
    headers = dict(dead.records[0].headers() or [])
    assert headers["dlq.reason"] == b"audit_refused"
    # Checked in Python before Postgres (streamer/audit/rows.py); the reason names the field, never its value
    assert headers["dlq.error"] == b"not a Decision v1; field schema_version missing"


def test_a_batch_whose_connection_is_lost_fails_and_commits_or_dead_letters_nothing_until_it_is_redone(
    isolated: Isolated, decision_records: list[Message]
) -> None:
    s = isolated.settings
    url = s.database_url.get_secret_value()
    [poison] = [m for m in decision_records if b"decision_id" not in (m.value() or b"")]
    decisions = [m for m in decision_records if m is not poison]
    batch = [*decisions[10:20], poison]
    last_id = json.loads(decisions[19].value() or b"{}")["decision_id"]
    publisher = Publisher(producer_config(s))
    audit = AuditStage(lambda: AuditSink(url), publisher, s.dlq_topic, writers=1, event_source=s.cloud_event_source())
    try:
        first = audit(decisions[:10])
        assert first.wait(30) and first.failure() is None
        with connection_lost_mid_write(url, last_id) as cut:
            lost = audit(batch)
            cut()
            assert lost.wait(30)
        assert isinstance(lost.failure(), AuditUnavailable)
        assert isolated.audit_rows() == 10, "rows of the failed batch were committed"
        redo = audit(batch)  # what the batch loop does with a failed batch
        assert redo.wait(30) and redo.failure() is None
    finally:
        audit.close()
        publisher.close()
    assert isolated.audit_rows() == 20
    dead = TopicReader(s, s.dlq_topic)
    dead.read_until(lambda records: len(records) > 1, 5)  # the stage publishes before its write reports
    dead.close()
    assert [(h["dlq.reason"], h["dlq.source.offset"]) for h in map(header_bytes, dead.records)] == [
        (b"audit_refused", str(poison.offset()).encode())
    ], "the poison record must be dead-lettered once, by the write that succeeded"


REFUSE_ONE = """
CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.application_id = 'app-7' THEN RAISE EXCEPTION 'a trigger refuses this row'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_one BEFORE INSERT ON decision_audit FOR EACH ROW EXECUTE FUNCTION refuse_one();
"""


def test_a_record_that_fails_alone_while_postgres_answers_is_dead_lettered_and_the_rest_written(
    isolated: Isolated, agent: AuditStage, decision_records: list[Message]
) -> None:
    # A record Postgres refuses with an error that is not a data error (here a trigger's, SQLSTATE P0001)
    # fails its whole batch every time; the batch loop then hands the batch over to give_up.
    with psycopg.connect(isolated.settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute(REFUSE_ONE)
    batch = [r for r in decision_records if json.loads(r.value() or b"{}").get("application_id") in FIRST_20]
    refused = next(r for r in batch if b'"app-7"' in (r.value() or b""))
    whole = agent(batch)
    assert whole.wait(30) and isinstance(whole.failure(), AuditUnavailable)
    given_up_before = _given_up()

    alone = agent.give_up(batch, AuditUnavailable("as the loop passes it"))
    assert alone.wait(30) and alone.failure() is None
    assert isolated.audit_rows() == 19
    assert _given_up() == given_up_before + 1
    dead = TopicReader(isolated.settings, isolated.settings.dlq_topic)
    assert dead.read_until(lambda records: len(records) >= 1, 30)
    dead.close()
    headers = header_bytes(dead.records[0])
    assert headers["dlq.reason"] == b"retries_exhausted"
    assert headers["dlq.error"] == b"RaiseException (SQLSTATE P0001)", "the reason must name the error, not quote it"
    assert dead.records[0].value() == refused.value()


FIRST_20 = {f"app-{i}" for i in range(20)}


def _given_up() -> float:
    return REGISTRY.get_sample_value("streamer_records_given_up_total", {"loop": "audit"}) or 0.0
