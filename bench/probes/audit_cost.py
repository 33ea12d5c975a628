"""Probe: Postgres CPU per audit row, for the audit sink as shipped and for the alternative of parsing
the decisions in Python and COPYing typed columns.

Starts an embedded Postgres, applies the migrations, and writes BATCHES batches of 2,000 fresh decision
events (real Decision v1 JSON from the shipped model) in one transaction each, the way the sink does.
It reads the backend's CPU from /proc, so it must run on the same machine as the server.

    python -m bench.probes.audit_cost 8
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg

from streamer.audit.migrations import migrate
from streamer.audit.sink import _COPY, _INSERT, _STAGING, DecisionEvent, _copy_text, _escape
from streamer.core.decisions import DecisionEncoder
from streamer.core.policy import DecisionPolicy
from streamer.core.validation import Rejection, parse_application
from streamer.local.embedded import EmbeddedPostgres
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion

BATCH = 2_000
_TYPED_STAGING = """
CREATE TEMP TABLE decision_audit_typed (
    decision_id uuid, application_id text, outcome text, probability_of_default float8, model_name text,
    model_version text, model_sha256 text, policy_version text, reason_codes jsonb, decided_at timestamptz,
    latency_ms float8, source_topic text, source_partition integer, source_offset bigint
) ON COMMIT DELETE ROWS
"""
# The shipped statement's tail (ledger claim, then the rows), fed from the typed staging table instead.
_TYPED_INSERT = (
    "WITH incoming AS (SELECT DISTINCT ON (decision_id) * FROM decision_audit_typed "
    "ORDER BY decision_id, source_offset\n" + _INSERT[_INSERT.index("), claimed AS"):]
)


def _typed_copy_text(events: Sequence[DecisionEvent]) -> bytes:
    lines = []
    for e in events:
        d = orjson.loads(e.value)
        m = d["model"]
        lines.append(b"%s\t%s\t%s\t%r\t%s\t%s\t%s\t%s\t%s\t%s\t%r\t%s\t%d\t%d\n" % (
            d["decision_id"].encode(), _escape(d["application_id"].encode()), d["outcome"].encode(),
            d["probability_of_default"], _escape(m["name"].encode()), _escape(m["version"].encode()),
            m["sha256"].encode(), _escape(d["policy_version"].encode()), _escape(orjson.dumps(d["reason_codes"])),
            d["decided_at"].encode(), d["latency_ms"], e.topic.encode(), e.partition, e.offset))
    return b"".join(lines)


VARIANTS: dict[str, tuple[Callable[[Sequence[DecisionEvent]], bytes], str, str]] = {
    "shipped: COPY JSON as jsonb, Postgres parses": (_copy_text, _COPY, _INSERT),
    "alternative: Python parses, COPY typed columns": (
        _typed_copy_text, "COPY decision_audit_typed FROM STDIN", _TYPED_INSERT),
}


def _decisions(count: int) -> list[list[DecisionEvent]]:
    entry = champion(Path("onnx_models"))
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    encoder = DecisionEncoder(scorer.ref, scorer.feature_names, DecisionPolicy())
    factory = ApplicationFactory(seed=int(time.time()))
    batches = []
    for _ in range(count):
        parsed = [parse_application(p.value, 65_536) for p in factory.mixed(BATCH, 0)]
        applications = [a for a in parsed if not isinstance(a, Rejection)]
        decided = encoder.encode(applications, [0.0] * len(applications), scorer.score(applications),
                                 datetime.now(UTC))
        batches.append([DecisionEvent("loan-decisions", 0, i, d.value) for i, d in enumerate(decided)])
    return batches


def _backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def _measure(conn: psycopg.Connection[tuple[object, ...]], name: str, batches: int) -> str:
    encode, copy_sql, insert_sql = VARIANTS[name]
    work = _decisions(batches)  # fresh ids each time: a repeated id costs less (the ledger refuses it)
    rows, python_s = 0, 0.0
    pid = conn.info.backend_pid
    cpu, started = _backend_cpu_s(pid), time.perf_counter()
    for events in work:
        python_started = time.process_time()
        data = encode(events)
        python_s += time.process_time() - python_started
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(copy_sql) as copy:
                copy.write(data)
            cursor.execute(insert_sql)
            rows += cursor.rowcount
    wall, backend = time.perf_counter() - started, _backend_cpu_s(pid) - cpu
    return (f"{name}: {rows:,} rows, Postgres backend {1e6 * backend / rows:.1f} µs/row, "
            f"worker-side encoding {1e6 * python_s / rows:.1f} µs/row, wall {1e6 * wall / rows:.1f} µs/row")


def main(batches: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg").start()
        try:
            migrate(postgres.url)
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                conn.execute(_STAGING)
                conn.execute(_TYPED_STAGING)
                for round_ in (1, 2):
                    for name in VARIANTS:
                        print(f"round {round_} {_measure(conn, name, batches)}", flush=True)
        finally:
            postgres.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
