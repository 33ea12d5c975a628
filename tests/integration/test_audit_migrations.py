"""The migrations of issue 13 (006 offsets table, 007 BRIN time indexes) and issue 14 (009 record columns) on a
database that holds audit rows: every row stays as it was, in the partition it was in, and the audit goes on
writing one row per decision."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from schemas import decision_id_for
from streamer.audit.migrations import migrate, pending_sql
from streamer.audit.sink import AuditSink, DecisionEvent
from streamer.core.records import RECORD, KeyRing, RecordEncoder, generate_keys
from streamer.local.stack import LocalStack
from streamer.model.onnx_scorer import SMOKE_APPLICATION
from tests.conftest import TANSU_ONLY

pytestmark = [pytest.mark.integration, TANSU_ONLY]  # Postgres only: one broker is enough

BEFORE_ISSUE_13 = "005_cheaper_sha256_check"
NOW = datetime.now(UTC)
# Decision times in five months (three of them past ones, made as `streamer audit-partitions` would), and one
# no monthly partition covers, which lands in the DEFAULT partition.
TIMES = [NOW - timedelta(days=62), NOW - timedelta(days=31), NOW, NOW + timedelta(days=31),
         datetime(2001, 2, 3, 4, 5, 6, 789_000, tzinfo=UTC)]


@pytest.fixture
def database_at_005(stack: LocalStack) -> Iterator[str]:
    """A database migrated up to 005, as production ran before issue 13."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(stack.postgres.url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL"
                     " DEFAULT now())")
        for version, sql in pending_sql():
            if version > BEFORE_ISSUE_13:
                break
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", [version])
        first = min(TIMES[:-1]).date()
        conn.execute("SELECT streamer_ensure_audit_partitions(%s, %s)", [first, max(TIMES).date()])
    yield url


def _populate(url: str) -> None:
    """Rows as the audit wrote them before issue 13: every column set, some with reason codes."""
    with psycopg.connect(url) as conn:
        for n in range(40):
            decided_at = TIMES[n % len(TIMES)] + timedelta(microseconds=n)
            app = f"app-{n}"
            decision_id = decision_id_for(app, "m", "1")
            reasons = [{"code": "SAVINGS", "feature": "savings", "description": f"Low savings {n}"}] * (n % 5)
            conn.execute(
                "INSERT INTO decision_audit (decision_id, application_id, outcome, probability_of_default, model_name,"
                " model_version, model_sha256, policy_version, reason_codes, decided_at, latency_ms, source_topic,"
                " source_partition, source_offset)"
                " VALUES (%s, %s, %s, %s, 'm', '1', %s, 'p1', %s, %s, %s, 'd', %s, %s)",
                [decision_id, app, ("approve", "review", "decline")[n % 3], n / 40, "c" * 64, json.dumps(reasons),
                 decided_at, n * 1.5, n % 4, n])
            conn.execute("INSERT INTO decision_audit_ids (decision_id, decided_at) VALUES (%s, %s)",
                         [decision_id, decided_at])


def _everything(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tableoid::regclass::text, * FROM decision_audit ORDER BY decision_id").fetchall()
        ids = conn.execute("SELECT * FROM decision_audit_ids ORDER BY decision_id").fetchall()
    return rows, ids


def _event(application_id: str, decided_at: datetime, offset: int) -> DecisionEvent:
    doc = {
        "schema_version": 1, "decision_id": decision_id_for(application_id, "m", "1"),
        "application_id": application_id, "outcome": "approve", "probability_of_default": 0.1,
        "model": {"name": "m", "version": "1", "sha256": "c" * 64}, "policy_version": "p1", "reason_codes": [],
        "decided_at": decided_at.isoformat(), "latency_ms": 3.0,
    }
    return DecisionEvent("d", 0, offset, json.dumps(doc).encode())


class TestMigratingAPopulatedDatabase:
    def test_every_row_is_still_there_unchanged_in_its_partition_and_the_ledger_too(self, database_at_005: str) -> None:
        _populate(database_at_005)
        rows, ids = _everything(database_at_005)
        partitions = {row[0] for row in rows}
        assert "decision_audit_default" in partitions and len(partitions) >= 5, partitions
        assert len(rows) == len(ids) == 40

        applied = migrate(database_at_005)

        assert applied == [v for v, _ in pending_sql() if v > BEFORE_ISSUE_13]
        after, ids_after = _everything(database_at_005)
        # 009 (issue 14) adds the five record columns, NULL for every row written before it.
        assert ([row[:-5] for row in after], ids_after) == (rows, ids)
        assert {row[-5:] for row in after} == {(None,) * 5}
        with psycopg.connect(database_at_005) as conn:
            methods = conn.execute(
                "SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
                " WHERE c.relname IN ('decision_audit_decided_at', 'decision_audit_ids_decided_at')").fetchall()
        assert sorted(methods) == [("decision_audit_decided_at", "brin"), ("decision_audit_ids_decided_at", "brin")]

    def test_the_audit_goes_on_after_it_one_row_per_decision_id(self, database_at_005: str) -> None:
        _populate(database_at_005)
        migrate(database_at_005)
        sink = AuditSink(database_at_005, consumer_group="g")
        try:
            old_again = _event("app-7", NOW, 100)  # audited before the migration, decided again now
            assert sink.write([_event("app-new", NOW, 101), old_again], {("d", 0): 100}).inserted == 1
        finally:
            sink.close()
        rows, ids = _everything(database_at_005)
        assert len(rows) == len(ids) == 41
        with psycopg.connect(database_at_005) as conn:
            assert conn.execute("SELECT next_offset FROM audit_consumer_offsets").fetchall() == [(100,)]


def test_a_row_with_its_record_that_waited_in_default_moves_into_its_new_month_whole(database_at_005: str) -> None:
    migrate(database_at_005)
    keys = KeyRing.parse(generate_keys("k1"), None)
    later = NOW + timedelta(days=600)  # past the months `migrate` creates: lands in DEFAULT
    event = _event("app-later", later, 7)
    decision_id = uuid.UUID(json.loads(event.value)["decision_id"]).bytes
    record = keys.sealer(RECORD).seal(RecordEncoder(["savings", "age_years"]).document(SMOKE_APPLICATION), decision_id)
    sink = AuditSink(database_at_005, consumer_group="g", record_keys=keys)
    try:
        assert sink.write([event._replace(record=record)]).inserted == 1
    finally:
        sink.close()
    query = ("SELECT tableoid::regclass::text, application->'applicant'->>'savings', features, record_key_id,"
             " protected_attributes IS NOT NULL FROM decision_audit")
    with psycopg.connect(database_at_005, autocommit=True) as conn:
        [before] = conn.execute(query).fetchall()
        conn.execute("SELECT streamer_ensure_audit_partitions(%s, %s)", [later.date(), later.date()])
        [after] = conn.execute(query).fetchall()
    assert before[0] == "decision_audit_default"
    assert after[0] == f"decision_audit_y{later:%Y}m{later:%m}"
    assert after[1:] == before[1:] == ("below_100", {"savings": "below_100"}, "k1", True)
