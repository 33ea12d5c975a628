"""Audit rows into PostgreSQL: one transaction per batch, idempotent on decision_id.

The decision events go to Postgres as they are (COPY of the JSON into a session-local staging table),
and one INSERT … SELECT turns them into rows; Postgres parses, casts and checks them, so the worker
spends almost no CPU per row. A batch Postgres refuses as data (by SQLSTATE class: `_refused_as_data`) is
retried row by row to find the records that poison it; those are returned, not retried. Only this package
talks to psycopg.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamer import metrics

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS decision_audit_incoming (
    source_topic text, source_partition integer, source_offset bigint, decision jsonb
) ON COMMIT DELETE ROWS
"""
_COPY = "COPY decision_audit_incoming (source_topic, source_partition, source_offset, decision) FROM STDIN"
# One statement per batch: parse the staged JSON once, keep the first event per decision_id, claim the
# ids in the ledger (decision_audit_ids), and write rows only for ids claimed now. A decision of another
# schema version gets a NULL id, which the ledger's primary key refuses (the batch is then split).
_INSERT = """
WITH incoming AS (
    SELECT DISTINCT ON (decision_id) * FROM (
        SELECT (CASE WHEN d->>'schema_version' = '1' THEN d->>'decision_id' END)::uuid AS decision_id,
               d->>'application_id' AS application_id, d->>'outcome' AS outcome,
               (d->>'probability_of_default')::float8 AS probability_of_default,
               d->'model'->>'name' AS model_name, d->'model'->>'version' AS model_version,
               d->'model'->>'sha256' AS model_sha256, d->>'policy_version' AS policy_version,
               d->'reason_codes' AS reason_codes, (d->>'decided_at')::timestamptz AS decided_at,
               (d->>'latency_ms')::float8 AS latency_ms, source_topic, source_partition, source_offset
        FROM decision_audit_incoming AS staged (source_topic, source_partition, source_offset, d)
    ) AS parsed
    ORDER BY decision_id, source_offset
), claimed AS (
    INSERT INTO decision_audit_ids (decision_id, decided_at)
    SELECT decision_id, decided_at FROM incoming
    ON CONFLICT (decision_id) DO NOTHING
    RETURNING decision_id
)
INSERT INTO decision_audit (
    decision_id, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256, policy_version, reason_codes, decided_at, latency_ms,
    source_topic, source_partition, source_offset)
SELECT incoming.* FROM incoming JOIN claimed USING (decision_id)
"""


WATCHDOG_GRACE_S = 5.0  # past the write timeout, for Postgres's own statement_timeout to answer first


class DecisionEvent(NamedTuple):
    """A decision record as consumed: its JSON value and where it sits in Kafka (one per record: a
    NamedTuple is cheaper to build than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    refused: list[tuple[DecisionEvent, str]]  # events Postgres rejected as data, with its reason


class AuditUnavailable(Exception):
    """Postgres could not take the batch; nothing of it was committed."""


class AuditSink:
    def __init__(self, database_url: str, connect_timeout_s: int = 5, write_timeout_s: float = 30.0) -> None:
        self._url = database_url
        self._connect_timeout_s = connect_timeout_s
        self._write_timeout_s = write_timeout_s
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def answers(self) -> bool:
        """Whether Postgres answers a trivial query now (on a new connection if need be)."""
        try:
            self._connection().execute("SELECT 1")
        except psycopg.Error:
            self.close()
            return False
        return True

    def backend_pid(self) -> int:
        """The server process serving this sink's connection (connecting first if need be)."""
        return self._connection().info.backend_pid

    def write(self, events: Sequence[DecisionEvent]) -> WriteResult:
        """Insert the events' rows in one transaction. Rows Postgres refuses as data are returned."""
        if not events:
            return WriteResult(0, [])
        started = time.perf_counter()
        watchdog = _Watchdog(self._write_timeout_s + WATCHDOG_GRACE_S)
        try:
            try:
                conn = self._connection()
                watchdog.start(conn)
                result = WriteResult(self._insert(events), [])
            except psycopg.Error as exc:
                if not _refused_as_data(exc):
                    raise
                result = self._insert_one_by_one(events)
        except psycopg.Error as exc:
            self.close()
            if watchdog.fired:
                raise AuditUnavailable(
                    f"no answer from Postgres within {watchdog.seconds:.0f} s; connection dropped"
                ) from exc
            raise AuditUnavailable(_outage(exc)) from exc
        finally:
            watchdog.cancel()
        metrics.AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.AUDIT_ROWS.inc(result.inserted)
        return result

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _insert(self, events: Sequence[DecisionEvent]) -> int:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(_COPY) as copy:
                copy.write(_copy_text(events))
            cursor.execute(_INSERT)
            return cursor.rowcount

    def _insert_one_by_one(self, events: Sequence[DecisionEvent]) -> WriteResult:
        inserted, refused = 0, []
        for event in events:
            try:
                inserted += self._insert([event])
            except psycopg.Error as exc:
                if not _refused_as_data(exc):
                    raise
                refused.append((event, _refusal(exc)))
        return WriteResult(inserted, refused)

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            conninfo = make_conninfo(self._url, **_connection_defaults(self._url))
            conn = psycopg.connect(conninfo, connect_timeout=self._connect_timeout_s, autocommit=True)
            # Postgres ends a statement, or a transaction left idle, that outlasts a write: a lock held by a
            # stuck session then costs one retry, not a writer.
            timeout_ms = str(int(self._write_timeout_s * 1000))
            conn.execute("SELECT set_config('statement_timeout', %s, false),"
                         " set_config('idle_in_transaction_session_timeout', %s, false)", [timeout_ms, timeout_ms])
            conn.execute(_STAGING)
            self._conn = conn
        return self._conn


# Connection settings unless the URL sets its own. TCP: a connection whose peer vanished (a failover, a
# network partition) errors within ~30 s instead of after the kernel's 2-hour keepalive default. The name
# shows the audit's sessions in pg_stat_activity.
_CONNECTION_DEFAULTS: dict[str, int | str] = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
    "tcp_user_timeout": 30_000, "application_name": "streamer-audit",
}


def _connection_defaults(url: str) -> dict[str, int | str]:
    given = conninfo_to_dict(url)
    return {k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}


class _Watchdog:
    """Drops a connection whose write outlasts `seconds`: a frozen backend, or a half-open connection, answers
    nothing, so neither the server's statement_timeout nor psycopg ends the wait. Shutting the socket down
    wakes the waiting writer with an error (closing the descriptor from another thread would not)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._done = False

    def start(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._timer = threading.Timer(self.seconds, self._fire, [conn.fileno()])
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self, fd: int) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)


# SQLSTATE classes Postgres answers for what a record holds, whatever the state of the database: 22 data
# exception (a bad cast, invalid JSON, a NUL), 23 integrity (a check), 54 program limit (an application_id
# over the btree row limit of ~2.7 KB: 54000; JSON nested deeper than its parser's stack: 54001). The
# class, not the Python class: psycopg raises 54 as an OperationalError, like a lost connection. Every
# other class is the database's (08 connection, 40 rollback, 53 resources, 57 cancelled or shut down) or
# the deployment's (42: a missing table, column or privilege), and a fix or a wait makes the batch
# succeed, so it is retried; our statement casts with `::`, so a malformed value is a 22, never a 42.
DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def _refused_as_data(exc: psycopg.Error) -> bool:
    """True if Postgres refused the statement for the data it was given: no retry can make it succeed."""
    return (exc.sqlstate or "")[:2] in DATA_SQLSTATE_CLASSES


def _outage(exc: psycopg.Error) -> str:
    """Why a batch could not be written, for a log line: the primary message only, as its context and detail
    may quote the batch (`COPY decision_audit_incoming, line 2, column decision: "{…"`)."""
    if exc.sqlstate is None:  # raised by the client (libpq): connection trouble, quoting nothing of ours
        return f"{type(exc).__name__}: {exc}".strip()
    return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate}): {exc.diag.message_primary or ''}".strip()


def _refusal(exc: psycopg.Error) -> str:
    """Why Postgres refused a row, in names only: its messages quote the input (`Failing row contains
    (…)`, `invalid input syntax for type uuid: "…"`), and this text becomes a dead letter's dlq.error."""
    diag = exc.diag
    named = [("table", diag.table_name), ("column", diag.column_name), ("constraint", diag.constraint_name),
             ("type", diag.datatype_name)]
    return "; ".join([f"{type(exc).__name__} (SQLSTATE {exc.sqlstate})", *(f"{k} {v}" for k, v in named if v)])


def _copy_text(events: Sequence[DecisionEvent]) -> bytes:
    """COPY text format: tab-separated columns, one line per event, backslash escapes in the value."""
    return b"".join(
        b"%s\t%d\t%d\t%s\n" % (e.topic.encode(), e.partition, e.offset, _escape(e.value)) for e in events
    )


def _escape(value: bytes) -> bytes:
    return value.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")
