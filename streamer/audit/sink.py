"""Audit rows into PostgreSQL: one transaction per batch, idempotent on decision_id.

The only place (with migrations) that talks to psycopg.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from streamer import metrics

# unnest() of one array per column: a single round trip per batch, and ON CONFLICT makes it idempotent.
_INSERT = """
INSERT INTO decision_audit (
    decision_id, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256, policy_version, reason_codes, decided_at, latency_ms,
    source_topic, source_partition, source_offset)
SELECT * FROM unnest(
    %s::uuid[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[],
    %s::text[], %s::text[], %s::jsonb[], %s::timestamptz[], %s::float8[],
    %s::text[], %s::int[], %s::bigint[])
ON CONFLICT (decision_id) DO NOTHING
"""


@dataclass(frozen=True)
class AuditRow:
    decision_id: str
    application_id: str
    outcome: str
    probability_of_default: float
    model_name: str
    model_version: str
    model_sha256: str
    policy_version: str
    reason_codes: list[dict[str, str]]
    decided_at: datetime
    latency_ms: float
    source_topic: str
    source_partition: int
    source_offset: int


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    refused: list[tuple[AuditRow, str]]  # rows Postgres rejected as data, with its reason


class AuditUnavailable(Exception):
    """Postgres could not take the batch; nothing of it was committed."""


class AuditSink:
    def __init__(self, database_url: str, connect_timeout_s: int = 5) -> None:
        self._url = database_url
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def write(self, rows: Sequence[AuditRow]) -> WriteResult:
        """Insert the rows in one transaction. Rows Postgres refuses as data are returned, not retried."""
        if not rows:
            return WriteResult(0, [])
        started = time.perf_counter()
        try:
            result = self._insert_batch(rows)
        except (psycopg.DataError, psycopg.IntegrityError):
            result = self._insert_one_by_one(rows)  # find the rows that poison the batch
        except psycopg.Error as exc:
            self.close()
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        metrics.AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.AUDIT_ROWS.inc(result.inserted)
        return result

    def _insert_batch(self, rows: Sequence[AuditRow]) -> WriteResult:
        conn = self._connection()
        with conn.transaction():
            cursor = conn.execute(_INSERT, _columns(rows))
        return WriteResult(cursor.rowcount, [])

    def _insert_one_by_one(self, rows: Sequence[AuditRow]) -> WriteResult:
        inserted, refused = 0, []
        try:
            for row in rows:
                try:
                    inserted += self._insert_batch([row]).inserted
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    refused.append((row, f"{type(exc).__name__}: {exc}".strip()))
        except psycopg.Error as exc:
            self.close()
            raise AuditUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc
        return WriteResult(inserted, refused)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, connect_timeout=self._connect_timeout_s, autocommit=True)
        return self._conn


def _columns(rows: Sequence[AuditRow]) -> list[list[object]]:
    return [
        [r.decision_id for r in rows],
        [r.application_id for r in rows],
        [r.outcome for r in rows],
        [r.probability_of_default for r in rows],
        [r.model_name for r in rows],
        [r.model_version for r in rows],
        [r.model_sha256 for r in rows],
        [r.policy_version for r in rows],
        [json.dumps(r.reason_codes) for r in rows],
        [r.decided_at for r in rows],
        [r.latency_ms for r in rows],
        [r.source_topic for r in rows],
        [r.source_partition for r in rows],
        [r.source_offset for r in rows],
    ]
