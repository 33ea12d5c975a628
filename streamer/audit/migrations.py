"""Apply streamer/audit/sql/*.sql in order, once each, under an advisory lock."""

from __future__ import annotations

from importlib import resources

import psycopg

from streamer.audit.partitions import MONTHS_AHEAD

# Any constant works; it only has to be the same for every migrating process.
_LOCK_KEY = 0x5354_5245_414D  # "STREAM"


def pending_sql() -> list[tuple[str, str]]:
    files = sorted(
        (p for p in resources.files("streamer.audit.sql").iterdir() if p.name.endswith(".sql")), key=lambda p: p.name
    )
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(database_url: str, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """Apply pending migrations, then make sure the coming months' audit partitions exist.

    Returns the versions applied now (empty when the database was already up to date).
    """
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in pending_sql():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
            conn.execute(
                "SELECT streamer_ensure_audit_partitions(current_date,"
                " (current_date + make_interval(months => %s))::date)",
                (months_ahead,),
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
