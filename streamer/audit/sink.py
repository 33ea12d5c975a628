"""Audit rows into PostgreSQL: one transaction per batch, one row per decision_id.

The decision events are parsed and checked in Python (streamer/audit/rows.py) and COPYed as typed columns,
in binary, straight into the ledger `decision_audit_ids` and the table `decision_audit`: Postgres parses
nothing and runs no query per row, so a row costs it little more than its heap tuple and index entries
(bench/results/audit-cost-2026-12-02.txt). A batch whose ids the ledger already holds (a resubmitted
application, a redelivered decision) goes the slower way that skips them: a typed staging table and one
INSERT … ON CONFLICT DO NOTHING. A record that is not a Decision v1 is refused by Python; one Postgres refuses
as data (by SQLSTATE class: `_refused_as_data`) is found by writing the batch row by row. Both are returned,
not retried. The same transaction stores the consumer offsets it is given (`audit_consumer_offsets`). Only
this package talks to psycopg.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from streamer import metrics
from streamer.audit.rows import COLUMNS, SIGNATURE, TRAILER, EncodedRow, NotADecision, RowEncoder
from streamer.core.records import KeyRing

_COLUMNS = ", ".join(COLUMNS)
_COPY_LEDGER = "COPY decision_audit_ids (decision_id, decided_at) FROM STDIN (FORMAT BINARY)"
_COPY_ROWS = f"COPY decision_audit ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS decision_audit_incoming (LIKE decision_audit INCLUDING DEFAULTS)
ON COMMIT DELETE ROWS
"""
_COPY_STAGED = f"COPY decision_audit_incoming ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
# The ids already in the ledger are skipped; the batch holds each id once (see _first_per_id). The column lists
# are written out (not formatted in, which bandit flags); tests/unit/test_audit_rows.py checks they are COLUMNS.
_INSERT_NEW = """
WITH claimed AS (
    INSERT INTO decision_audit_ids (decision_id, decided_at)
    SELECT decision_id, decided_at FROM decision_audit_incoming
    ON CONFLICT (decision_id) DO NOTHING
    RETURNING decision_id
)
INSERT INTO decision_audit (decision_id, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256, policy_version, reason_codes, decided_at, latency_ms, source_topic, source_partition, source_offset,
    application_schema_version, application, features, protected_attributes, record_key_id)
SELECT decision_id, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256, policy_version, reason_codes, decided_at, latency_ms, source_topic, source_partition, source_offset,
    application_schema_version, application, features, protected_attributes, record_key_id
FROM decision_audit_incoming JOIN claimed USING (decision_id)
"""
# Offsets only move forward: a batch read again (Kafka's committed offsets reset behind) stores nothing
# older. Rows in key order, so two writers storing the same partitions lock them in the same order.
_STORE_OFFSETS = """
INSERT INTO audit_consumer_offsets (consumer_group, topic, partition, next_offset)
SELECT %s, t, p, o FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS given (t, p, o) ORDER BY t, p
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = GREATEST(audit_consumer_offsets.next_offset, EXCLUDED.next_offset), stored_at = now()
"""
_LEDGER_KEY = "decision_audit_ids_pkey"

Offsets = Mapping[tuple[str, int], int]  # (topic, partition) -> the next offset to read


WATCHDOG_GRACE_S = 5.0  # past the write timeout, for Postgres's own statement_timeout to answer first


class DecisionEvent(NamedTuple):
    """A decision record as consumed: its JSON value, its sealed decision record (the `streamer-record` header)
    if it has one, and where it sits in Kafka (one per record: a NamedTuple is cheaper to build than a frozen
    dataclass)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    record: bytes | None = None


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    refused: list[tuple[DecisionEvent, str]]  # events that are not a Decision v1 or that Postgres refused as data
    offsets_stored: bool = False  # whether the offsets given were stored with the rows


class AuditUnavailable(Exception):
    """Postgres could not take the batch; nothing of it was committed."""


class AuditSink:
    def __init__(self, database_url: str, connect_timeout_s: int = 5, write_timeout_s: float = 30.0,
                 consumer_group: str | None = None, record_keys: KeyRing | None = None) -> None:
        self._url = database_url
        self._consumer_group = consumer_group  # whose offsets write() stores; None: none
        self._connect_timeout_s = connect_timeout_s
        self._write_timeout_s = write_timeout_s
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._encoder = RowEncoder(record_keys)

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

    def write(self, events: Sequence[DecisionEvent], offsets: Offsets | None = None) -> WriteResult:
        """Insert the events' rows, and store `offsets`, in one transaction. Records that are not a Decision v1,
        or that Postgres refuses as data, are returned. When Postgres refuses one, the rows are written one per
        transaction to find it, and the offsets are left for a later write (they only ever grow)."""
        if not events and not offsets:
            return WriteResult(0, [])
        started = time.perf_counter()
        rows, refused = self._rows(events)
        offsets = offsets if self._consumer_group is not None else None
        watchdog = _Watchdog(self._write_timeout_s + WATCHDOG_GRACE_S)
        try:
            try:
                conn = self._connection()
                watchdog.start(conn)
                result = WriteResult(self._insert(rows, offsets), refused, offsets_stored=bool(offsets))
            except psycopg.Error as exc:
                if not _refused_as_data(exc):
                    raise
                result = self._insert_one_by_one(rows, refused)
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

    def _rows(self, events: Sequence[DecisionEvent]) -> tuple[list[tuple[EncodedRow, DecisionEvent]],
                                                               list[tuple[DecisionEvent, str]]]:
        rows, refused = [], []
        encode, unreadable = self._encoder.row, self._encoder.unreadable
        for event in events:
            try:
                rows.append((encode(event.value, event.topic, event.partition, event.offset, event.record), event))
            except NotADecision as exc:
                refused.append((event, f"not a Decision v1; {exc}"))
        if self._encoder.unreadable > unreadable:  # audited all the same, without their record
            metrics.AUDIT_RECORDS_UNREADABLE.inc(self._encoder.unreadable - unreadable)
        return rows, refused

    def _insert(self, rows: Sequence[tuple[EncodedRow, DecisionEvent]], offsets: Offsets | None) -> int:
        """Straight into the tables when no id is in the ledger yet (the usual case), else the slower way."""
        unique = _first_per_id(rows)
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cursor:
                if unique:
                    _copy(cursor, _COPY_LEDGER, [r.ledger for r in unique])
                    _copy(cursor, _COPY_ROWS, [r.row for r in unique])
                self._store(cursor, offsets)
                return len(unique)
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != _LEDGER_KEY:
                raise
        with conn.transaction(), conn.cursor() as cursor:
            _copy(cursor, _COPY_STAGED, [r.row for r in unique])
            cursor.execute(_INSERT_NEW)
            inserted = cursor.rowcount
            self._store(cursor, offsets)
            return inserted

    def _store(self, cursor: psycopg.Cursor[tuple[object, ...]], offsets: Offsets | None) -> None:
        if offsets:
            keys = sorted(offsets)
            cursor.execute(_STORE_OFFSETS, (self._consumer_group, [t for t, _ in keys], [p for _, p in keys],
                                            [offsets[k] for k in keys]))

    def _insert_one_by_one(
        self, rows: Sequence[tuple[EncodedRow, DecisionEvent]], refused: list[tuple[DecisionEvent, str]]
    ) -> WriteResult:
        inserted = 0
        for row in rows:
            try:
                inserted += self._insert([row], None)
            except psycopg.Error as exc:
                if not _refused_as_data(exc):
                    raise
                refused.append((row[1], _refusal(exc)))
        return WriteResult(inserted, sorted(refused, key=lambda r: r[0].offset))

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


def _first_per_id(rows: Sequence[tuple[EncodedRow, DecisionEvent]]) -> list[EncodedRow]:
    """Each decision_id once, the first by offset (the batch loop hands records over in offset order)."""
    seen: dict[bytes, EncodedRow] = {}
    for row, _ in rows:
        seen.setdefault(row.decision_id, row)
    return list(seen.values())


def _copy(cursor: psycopg.Cursor[tuple[object, ...]], statement: str, rows: list[bytes]) -> None:
    with cursor.copy(statement) as copy:
        copy.write(b"".join((SIGNATURE, *rows, TRAILER)))
