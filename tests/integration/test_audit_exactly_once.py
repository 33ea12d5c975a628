"""The audit resumes from the offsets its transactions stored in Postgres with the rows, not from Kafka's
committed offsets: a database restored from an older copy gets the decisions since that copy again, and
committed offsets reset behind make the audit read nothing twice. Apache Kafka: the audit resumes from
Postgres where its consumer never skips (auto.offset.reset=error), i.e. not under the tansu profile."""

from __future__ import annotations

import json
from collections.abc import Sequence

import psycopg
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config
from tests.conftest import KAFKA_ONLY, Isolated
from tests.integration.helpers import committed, end_offsets, eventually, wait_until_consumed

pytestmark = [pytest.mark.integration, KAFKA_ONLY]

AUDIT_TABLES = ("decision_audit", "decision_audit_ids", "audit_consumer_offsets")


def _stored_offsets(isolated: Isolated) -> dict[tuple[str, int], int]:
    with psycopg.connect(isolated.settings.database_url.get_secret_value()) as conn:
        rows = conn.execute("SELECT topic, partition, next_offset FROM audit_consumer_offsets"
                            " WHERE consumer_group = %s", [isolated.settings.audit_group()]).fetchall()
    return {(t, p): o for t, p, o in rows}


def _audited(isolated: Isolated) -> list[tuple[str, int, int]]:
    """Every audit row's decision_id, source partition and offset."""
    with psycopg.connect(isolated.settings.database_url.get_secret_value()) as conn:
        return [(str(i), p, o) for i, p, o in conn.execute(
            "SELECT decision_id, source_partition, source_offset FROM decision_audit ORDER BY 2, 3").fetchall()]


def _decisions(records: Sequence[Message]) -> list[tuple[str, int, int]]:
    return sorted(((json.loads(m.value() or b"{}")["decision_id"], m.partition() or 0, m.offset() or 0)
                   for m in records), key=lambda d: (d[1], d[2]))


def _audit_until_stored(isolated: Isolated, reader: TopicReader, count: int) -> None:
    """Publish `count` applications; wait until every decision so far is audited and Postgres holds the
    offsets past them (the stage stores them once the loop has marked their batches)."""
    s = isolated.settings
    seen = len(reader.records)
    publish(s, ApplicationFactory(seed=seen + 91).mixed(count, invalid_every=0))
    assert reader.read_until(lambda r: len(r) >= seen + count, 60)
    wait_until_consumed(s, s.audit_group(), reader.records)
    ends = end_offsets(reader.records)
    eventually(lambda: _stored_offsets(isolated) == ends, 20, "Postgres holds the offsets past every decision")


def _logged(isolated: Isolated, event: str, after_line: int = 0) -> list[dict[str, object]]:
    lines = (isolated.run_dir / "worker.log").read_text(errors="replace").splitlines()[after_line:]
    return [r for r in (json.loads(line) for line in lines if line.startswith("{")) if r.get("event") == event]


def _log_length(isolated: Isolated) -> int:
    return len((isolated.run_dir / "worker.log").read_text(errors="replace").splitlines())


def test_a_database_restored_from_an_older_copy_gets_the_decisions_since_that_copy_again(isolated: Isolated) -> None:
    s = isolated.settings
    url = s.database_url.get_secret_value()
    worker = isolated.start_worker()
    reader = TopicReader(s, s.decision_topic)
    try:
        _audit_until_stored(isolated, reader, 60)
        with psycopg.connect(url, autocommit=True) as conn:  # the "dump"
            for table in AUDIT_TABLES:
                conn.execute(f"CREATE TABLE copy_of_{table} AS TABLE {table}")
        _audit_until_stored(isolated, reader, 60)
        assert worker.stop() == 0
        with psycopg.connect(url) as conn:  # the "restore": the database as it was at the copy
            conn.execute("TRUNCATE " + ", ".join(AUDIT_TABLES))
            for table in AUDIT_TABLES:
                conn.execute(f"INSERT INTO {table} SELECT * FROM copy_of_{table}")
        assert len(_audited(isolated)) == 60
        restarted_at = _log_length(isolated)

        isolated.start_worker()
        eventually(lambda: len(_audited(isolated)) >= 120, 60, "the decisions since the copy audited again")
        assert _audited(isolated) == _decisions(reader.records), "a decision missing, or audited twice"
        [resumed] = _logged(isolated, "partitions_resumed_from_stored_offsets", restarted_at)
        moved = resumed["partitions"]
        assert isinstance(moved, list)  # [topic, partition, Kafka's committed offset, Postgres's offset]
        assert {(p, stored) for _, p, _, stored in moved} == {
            (p, o) for (_, p), o in end_offsets(reader.records[:60]).items()}
    finally:
        reader.close()


def test_committed_offsets_reset_to_the_start_make_the_audit_read_nothing_twice(isolated: Isolated) -> None:
    s = isolated.settings
    worker = isolated.start_worker()
    reader = TopicReader(s, s.decision_topic)
    try:
        _audit_until_stored(isolated, reader, 60)
        assert worker.stop() == 0
        partitions = [TopicPartition(s.decision_topic, p, 0) for p in range(s.topic_partitions)]
        admin = AdminClient(common_config(s))
        for future in admin.alter_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(s.audit_group(), partitions)]).values():
            future.result(timeout=10)
        assert set(committed(s, s.audit_group(), [(s.decision_topic, p) for p in range(4)]).values()) == {0}
        restarted_at = _log_length(isolated)

        isolated.start_worker()
        _audit_until_stored(isolated, reader, 20)
    finally:
        reader.close()
    assert _audited(isolated) == _decisions(reader.records)
    written = _logged(isolated, "audit_batch_written", restarted_at)
    assert sum(int(str(w["decisions"])) for w in written) == 20, "decisions audited before were read again"
