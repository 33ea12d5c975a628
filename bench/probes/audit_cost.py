"""Probe: Postgres CPU per audit row, for the audit sink as shipped (AuditSink.write).

Starts an embedded Postgres, applies the migrations, and writes BATCHES batches of 2,000 fresh decision
events (real Decision v1 JSON from the shipped model) through AuditSink.write, one transaction each, with
the consumer offsets stored as the audit stage stores them. Then it writes the same batches again: every id
is in the ledger, so the sink takes its slower way that skips them (what a redelivery costs). It reads the
backend's CPU from /proc, so it must run on the same machine as the server.

Each decision carries its sealed record (the `streamer-record` header, as the scorer makes it), so the cost
includes opening it and storing the five record columns (migration 009); `--no-records` measures without.

    python -m bench.probes.audit_cost 8
    python -m bench.probes.audit_cost 8 --no-records
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from streamer.audit.migrations import migrate
from streamer.audit.sink import AuditSink, DecisionEvent
from streamer.core.decisions import DecisionEncoder
from streamer.core.policy import DecisionPolicy
from streamer.core.records import RECORD, KeyRing, RecordEncoder, generate_keys
from streamer.core.validation import Rejection, parse_application
from streamer.local.embedded import EmbeddedPostgres
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion

BATCH = 2_000


def _decisions(count: int, keys: KeyRing | None) -> list[list[DecisionEvent]]:
    entry = champion(Path("onnx_models"))
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    encoder = DecisionEncoder(scorer.ref, scorer.feature_names, DecisionPolicy())
    records = RecordEncoder(scorer.feature_names)
    factory = ApplicationFactory(seed=int(time.time()))
    batches, offset = [], 0
    for _ in range(count):
        parsed = [parse_application(p.value, 65_536) for p in factory.mixed(BATCH, 0)]
        applications = [a for a in parsed if not isinstance(a, Rejection)]
        decided = encoder.encode(applications, [0.0] * len(applications), scorer.score(applications),
                                 datetime.now(UTC))
        sealed: list[bytes | None] = [None] * len(decided)
        if keys is not None:  # as the scorer seals them (streamer/stages/scoring.py)
            by_id = {a.application_id: a for a in applications}
            sealed = list(keys.sealer(RECORD).seal_many([records.document(by_id[d.application_id]) for d in decided],
                                                        [uuid.UUID(d.decision_id).bytes for d in decided]))
        batches.append([DecisionEvent("loan-decisions", i % 4, offset + i, d.value, record)
                        for i, (d, record) in enumerate(zip(decided, sealed, strict=True))])
        offset += len(decided)
    return batches


def _backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def _wal_bytes(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
    return int(row[0]) if row else 0


def _stored_bytes(url: str) -> int:
    """The audit table's partitions and the ledger, with their indexes and TOAST."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c"
            " WHERE c.relkind = 'r' AND (c.relname LIKE 'decision_audit%')").fetchone()
    return int(row[0]) if row else 0


def _measure(sink: AuditSink, url: str, name: str, work: list[list[DecisionEvent]]) -> str:
    pid = sink.backend_pid()
    rows, events, python_s = 0, 0, 0.0
    wal, stored = _wal_bytes(url), _stored_bytes(url)
    cpu, started = _backend_cpu_s(pid), time.perf_counter()
    for batch in work:
        offsets = {("loan-decisions", p): batch[0].offset + p for p in range(4)}  # as the stage passes them
        python_started = time.thread_time()
        rows += sink.write(batch, offsets).inserted
        python_s += time.thread_time() - python_started
        events += len(batch)
    wall, backend = time.perf_counter() - started, _backend_cpu_s(pid) - cpu
    wal, stored = _wal_bytes(url) - wal, _stored_bytes(url) - stored
    return (f"{name}: {events:,} events, {rows:,} rows inserted, Postgres backend {1e6 * backend / events:.1f} µs/row, "
            f"worker thread (parse, check, COPY, waiting excluded) {1e6 * python_s / events:.1f} µs/row, "
            f"wall {1e6 * wall / events:.1f} µs/row, WAL {wal / events:,.0f} B/row, "
            f"stored (tables, indexes) {stored / events:,.0f} B/row")


def main(batches: int, with_records: bool = True) -> None:
    keys = KeyRing.parse(generate_keys("probe"), None) if with_records else None
    with tempfile.TemporaryDirectory() as tmp:
        postgres = EmbeddedPostgres(Path(tmp) / "pg").start()
        try:
            migrate(postgres.url)
            sink = AuditSink(postgres.url, consumer_group="probe-audit", record_keys=keys)
            try:
                for round_ in (1, 2):
                    work = _decisions(batches, keys)  # fresh ids each round
                    for name in ("new ids: binary COPY into ledger and table",
                                 "ids already audited: staging + ON CONFLICT"):
                        print(f"round {round_} {_measure(sink, postgres.url, name, work)}", flush=True)
            finally:
                sink.close()
        finally:
            postgres.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.probes.audit_cost", description=__doc__.split("\n")[0])
    parser.add_argument("batches", type=int, nargs="?", default=8, help=f"batches of {BATCH:,} decisions per round")
    parser.add_argument("--no-records", action="store_true", help="decisions without their record header")
    arguments = parser.parse_args()
    main(arguments.batches, with_records=not arguments.no_records)
