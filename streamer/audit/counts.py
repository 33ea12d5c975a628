"""Read-side queries on the audit table, for the demo and operators."""

from __future__ import annotations

import psycopg


def audit_row_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM decision_audit").fetchone()
    return int(row[0]) if row else 0
