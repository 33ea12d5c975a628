"""The audit consumer's offsets as its transactions stored them (audit_consumer_offsets), to resume from."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


def stored_offsets(
    database_url: str, consumer_group: str, partitions: Sequence[tuple[str, int]], timeout_s: int = 5
) -> dict[tuple[str, int], int]:
    """The next offset to read of each of `partitions` that has one stored; raises psycopg.Error if Postgres
    cannot say."""
    if not partitions:
        return {}
    with psycopg.connect(database_url, connect_timeout=timeout_s) as conn:
        rows = conn.execute(
            "SELECT topic, partition, next_offset FROM audit_consumer_offsets"
            " WHERE consumer_group = %s AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))",
            (consumer_group, [t for t, _ in partitions], [p for _, p in partitions]),
        ).fetchall()
    return {(str(t), int(p)): int(o) for t, p, o in rows}
