"""What the worker reports about the audit database: is it reachable (the `streamer_audit_database_up`
gauge, not readiness), and do rows wait in its DEFAULT partition (`streamer_audit_default_partition_rows`)."""

from __future__ import annotations

import psycopg


def database_reachable(database_url: str, timeout_s: int = 2) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def default_partition_rows(database_url: str, timeout_s: int = 2) -> int:
    """Rows in decision_audit_default, counted up to 10,000 (migration 008's function, callable by the worker)."""
    with psycopg.connect(database_url, connect_timeout=timeout_s) as conn:
        row = conn.execute("SELECT streamer_audit_default_rows()").fetchone()
    return int(row[0]) if row else 0
