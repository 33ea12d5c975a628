"""Probe: Postgres CPU per row for ways of writing decision_audit's sha256 CHECK (migration 005).

Starts an embedded Postgres, fills a temp table with 200,000 64-character hex digests (as char(64) and
as text), and times `SELECT count(*) WHERE <expression>` for each expression, best of 3, in µs per row.

    python -m bench.probes.sha256_check_cost
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg

from streamer.local.embedded import EmbeddedPostgres

ROWS = 200_000
EXPRESSIONS = [
    "b ~ '^[0-9a-f]{64}$'",  # migration 002's check, on char(64)
    "length(b) = 64 AND b::text ~ '^[0-9a-f]*$'",  # migration 005's check
    "s ~ '^[0-9a-f]{64}$'",
    "translate(b, '0123456789abcdef', '') = '' AND length(b) = 64",
    "true",  # the scan alone
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg").start()
        try:
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                conn.execute(
                    "CREATE TEMP TABLE digests AS SELECT md5(g::text) || md5((g + 1)::text) AS s,"
                    " (md5(g::text) || md5((g + 1)::text))::char(64) AS b FROM generate_series(1, %s) AS g",
                    (ROWS,),
                )
                for expression in EXPRESSIONS:
                    best = float("inf")
                    for _ in range(3):
                        started = time.perf_counter()
                        conn.execute(f"SELECT count(*) FROM digests WHERE {expression}").fetchone()
                        best = min(best, time.perf_counter() - started)
                    print(f"{expression:64s} {1e6 * best / ROWS:6.2f} µs per row")
        finally:
            postgres.stop()


if __name__ == "__main__":
    main()
