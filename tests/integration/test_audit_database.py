"""The audit table's guarantees inside PostgreSQL: least privilege, monthly partitions, retention."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from schemas import decision_id_for
from streamer.audit import health, partitions
from streamer.audit.migrations import migrate
from streamer.audit.sink import AuditSink, DecisionEvent
from tests.conftest import TANSU_ONLY, Isolated
from tests.integration.helpers import eventually, scrape

pytestmark = [pytest.mark.integration, TANSU_ONLY]  # Postgres only: one broker is enough


def _event(application_id: str, decided_at: datetime, offset: int = 0) -> DecisionEvent:
    doc = {
        "schema_version": 1, "decision_id": decision_id_for(application_id, "m", "1"),
        "application_id": application_id, "outcome": "approve", "probability_of_default": 0.1,
        "model": {"name": "m", "version": "1", "sha256": "c" * 64}, "policy_version": "p1", "reason_codes": [],
        "decided_at": decided_at.isoformat(), "latency_ms": 3.0,
    }
    return DecisionEvent("loan-decisions", 0, offset, json.dumps(doc).encode())


@pytest.fixture
def worker_url(isolated: Isolated) -> Iterator[str]:
    """A login role the way a DBA makes it for the worker: a member of streamer_worker, nothing more."""
    owner_url = isolated.settings.database_url.get_secret_value()
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE streamer_worker")
    yield make_conninfo(owner_url, user=role)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {role}")


class TestWorkerRole:
    def test_the_worker_role_can_write_and_read_audit_rows(self, worker_url: str) -> None:
        sink = AuditSink(worker_url)
        try:
            assert sink.write([_event("app-1", datetime.now(UTC))]).inserted == 1
        finally:
            sink.close()
        with psycopg.connect(worker_url) as conn:
            assert conn.execute("SELECT count(*) FROM decision_audit").fetchone() == (1,)

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE decision_audit SET outcome = 'approve'",
            "DELETE FROM decision_audit",
            "TRUNCATE decision_audit",
            "DELETE FROM decision_audit_ids",
            "DROP TABLE decision_audit_default",
            "DELETE FROM audit_consumer_offsets",
            "TRUNCATE audit_consumer_offsets",
            "SELECT * FROM schema_migrations",
        ],
    )
    def test_the_worker_role_cannot_change_or_remove_audit_history(self, worker_url: str, statement: str) -> None:
        with psycopg.connect(worker_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


    def test_the_worker_role_can_store_and_advance_its_consumer_offsets(self, worker_url: str) -> None:
        sink = AuditSink(worker_url, consumer_group="g")
        try:
            assert sink.write([_event("app-1", datetime.now(UTC))], {("loan-decisions", 0): 1}).offsets_stored
            assert sink.write([_event("app-2", datetime.now(UTC), 1)], {("loan-decisions", 0): 2}).offsets_stored
        finally:
            sink.close()
        with psycopg.connect(worker_url) as conn:
            assert conn.execute("SELECT next_offset FROM audit_consumer_offsets").fetchall() == [(2,)]


class TestPartitions:
    def test_a_row_lands_in_the_partition_of_its_decision_month(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        now = datetime.now(UTC)
        sink = AuditSink(url)
        try:
            sink.write([_event("app-2", now)])
        finally:
            sink.close()
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT tableoid::regclass::text FROM decision_audit").fetchone()
        assert row == (f"decision_audit_y{now:%Y}m{now:%m}",)

    def test_a_redecision_months_later_is_still_one_row(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        now = datetime.now(UTC)
        sink = AuditSink(url)
        try:
            assert sink.write([_event("app-3", now - timedelta(days=62))]).inserted == 1
            assert sink.write([_event("app-3", now, offset=9)]).inserted == 0
        finally:
            sink.close()
        assert isolated.audit_rows() == 1

    def test_retention_drops_whole_expired_months_and_keeps_the_rest(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        now = datetime.now(UTC)
        old = now - timedelta(days=31 * 27)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT streamer_ensure_audit_partitions(%s, %s)", (old.date(), old.date()))
        sink = AuditSink(url)
        try:
            sink.write([_event("app-old", old), _event("app-new", now, offset=1)])
        finally:
            sink.close()

        plan = partitions.retention(url, keep_months=25)
        assert plan.expired == [f"decision_audit_y{old:%Y}m{old:%m}"]
        assert isolated.audit_rows() == 2  # listing drops nothing

        partitions.retention(url, keep_months=25, apply=True)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT application_id FROM decision_audit").fetchall() == [("app-new",)]
            assert conn.execute("SELECT count(*) FROM decision_audit_ids").fetchone() == (1,)
            assert conn.execute("SELECT to_regclass(%s)", (plan.expired[0],)).fetchone() == (None,)


def _month_after(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _partition_of(url: str, application_id: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT tableoid::regclass::text FROM decision_audit WHERE application_id = %s", (application_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


class TestDefaultPartition:
    """A row for month M in decision_audit_default must not make creating M's partition fail (issue 15)."""

    def test_migrate_moves_a_months_rows_out_of_default_into_its_new_partition(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        month = _month_after(datetime.now(UTC).date(), 1)
        name = f"decision_audit_y{month:%Y}m{month:%m}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {name}")  # as if the partitions had not been kept ahead
        sink = AuditSink(url)
        try:
            sink.write([_event("app-early", datetime(month.year, month.month, 2, tzinfo=UTC))])
        finally:
            sink.close()
        assert _partition_of(url, "app-early") == "decision_audit_default"

        migrate(url)

        assert _partition_of(url, "app-early") == name
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM decision_audit_default").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM decision_audit_ids").fetchone() == (1,)

    def test_migrate_creates_partitions_a_year_ahead(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        month = _month_after(datetime.now(UTC).date(), 12)
        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT to_regclass(%s)::text", (f"decision_audit_y{month:%Y}m{month:%m}",)).fetchone()
        assert found == (f"decision_audit_y{month:%Y}m{month:%m}",)

    def test_the_worker_role_sees_how_many_rows_wait_in_default(self, isolated: Isolated, worker_url: str) -> None:
        assert health.default_partition_rows(worker_url) == 0
        sink = AuditSink(isolated.settings.database_url.get_secret_value())
        try:
            sink.write([_event("app-ancient", datetime(2001, 1, 1, tzinfo=UTC))])  # no partition that far back
        finally:
            sink.close()
        assert health.default_partition_rows(worker_url) == 1

    def test_a_worker_reports_the_rows_waiting_in_default_as_soon_as_it_starts(self, isolated: Isolated) -> None:
        sink = AuditSink(isolated.settings.database_url.get_secret_value())
        try:
            sink.write([_event("app-ancient", datetime(2001, 1, 1, tzinfo=UTC))])
        finally:
            sink.close()
        port = isolated.start_worker().web_port
        eventually(lambda: scrape(port).get("streamer_audit_default_partition_rows") == 1, 20, "the gauge at 1")
