"""Is the audit database reachable? For the `streamer_audit_database_up` gauge, not for readiness."""

from __future__ import annotations

import psycopg


def database_reachable(database_url: str, timeout_s: int = 2) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
