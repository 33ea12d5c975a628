"""Monthly partitions of decision_audit: create them ahead of time, drop them after retention.

Run by the migration role (`streamer partitions`), never by the worker, whose role cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg
from psycopg import sql

# How far ahead `migrate` and `audit-partitions` create monthly partitions. A year: empty partitions cost
# nothing, and a row lands in DEFAULT only if a year of monthly runs failed (or a clock is that far off).
MONTHS_AHEAD = 12


@dataclass(frozen=True)
class RetentionPlan:
    expired: list[str]  # partitions whose every row is older than the retention period
    cutoff: date  # first day of the oldest month kept


def ensure_ahead(database_url: str, months_ahead: int = MONTHS_AHEAD) -> int:  # also run by every `migrate`
    """Create the monthly partitions from this month to `months_ahead` months out; returns how many are new.

    Rows of a new month that wait in the DEFAULT partition move into it (migration 008)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT streamer_ensure_audit_partitions(current_date, (current_date + make_interval(months => %s))::date)",
            (months_ahead,),
        ).fetchone()
    return int(row[0]) if row else 0


def retention(database_url: str, keep_months: int = 25, apply: bool = False) -> RetentionPlan:
    """Partitions entirely older than `keep_months` whole months; with `apply`, drop them and their ids."""
    with psycopg.connect(database_url) as conn:
        cutoff_row = conn.execute(
            "SELECT (date_trunc('month', current_date) - make_interval(months => %s))::date", (keep_months,)
        ).fetchone()
        assert cutoff_row is not None
        cutoff: date = cutoff_row[0]
        expired = [
            name for (name,) in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'decision_audit'::regclass AND c.relname ~ '^decision_audit_y[0-9]{4}m[0-9]{2}$'"
                " AND to_date(substr(c.relname, 17, 4) || substr(c.relname, 22, 2), 'YYYYMM') < %s"
                " ORDER BY c.relname",
                (cutoff,),
            )
        ]
        if apply:
            with conn.transaction():
                for name in expired:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                conn.execute("DELETE FROM decision_audit_ids WHERE decided_at < %s", (cutoff,))
    return RetentionPlan(expired, cutoff)
