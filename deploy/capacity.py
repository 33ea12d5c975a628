"""Capacity plan, on paper, from what was measured here: workers, partitions, Postgres and Kafka load for
1k, 10k, 100k and 1M applications/s. Nothing was run at these scales.

    python deploy/capacity.py          # prints the table deploy/README.md carries (a test keeps them equal)

Measured inputs (2 cores; see the files named):
- one worker's throughput: `make bench`'s streamer_1_worker median (bench/results/latest.json), with the
  broker and Postgres on the same 2 cores;
- Postgres per audit row: backend CPU, WAL and stored bytes from `python -m bench.probes.audit_cost 8`
  (CPU: the highest of the rounds in bench/results/audit-cost-2026-12-02.txt; WAL and stored bytes:
  bench/results/audit-cost-wal-2026-12-02.txt);
- record sizes: the synthetic applications' and their decisions' key + value bytes (deploy/README.md).
Assumptions, not measurements: workers planned at 70 % of the measured rate; twice as many partitions as
workers (room to scale out without repartitioning), in multiples of 8; one Postgres primary suffices while
the audit's inserts need at most 8 cores (half of a 16-core primary: autovacuum, checkpoints, replication
and reads take the rest) and at most 100 MB/s of WAL.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "results" / "latest.json"

RATES = (1_000, 10_000, 100_000, 1_000_000)
PLAN_AT = 0.7
POSTGRES_CPU_US_PER_ROW = 23.8
POSTGRES_WAL_BYTES_PER_ROW = 764
POSTGRES_STORED_BYTES_PER_ROW = 670
APPLICATION_BYTES = 691
DECISION_BYTES = 645
REPLICATION = 3
ONE_PRIMARY_CORES = 8.0
ONE_PRIMARY_WAL_MB_S = 100.0
REG_B_DAYS = 25 * 30.4  # adverse-action records are kept 25 months


@dataclass(frozen=True)
class Plan:
    rate: int
    workers: int
    partitions: int
    postgres_cores: float
    wal_mb_s: float
    audit_tb_retained: float
    kafka_in_mb_s: float
    kafka_disk_mb_s: float

    @property
    def one_primary(self) -> bool:
        return self.postgres_cores <= ONE_PRIMARY_CORES and self.wal_mb_s <= ONE_PRIMARY_WAL_MB_S


def worker_rate(bench: Path = BENCH) -> float:
    """Applications/s one worker sustained in the last `make bench` (exactly_once, the default)."""
    results = json.loads(bench.read_text())
    return float(results["systems"]["streamer_1_worker"]["events_per_s"]["median"])


def plan(rate: int, per_worker: float) -> Plan:
    workers = math.ceil(rate / (per_worker * PLAN_AT))
    partitions = max(8, 8 * math.ceil(2 * workers / 8))
    produced = rate * (APPLICATION_BYTES + DECISION_BYTES) / 1e6  # applications in, decisions out
    return Plan(
        rate=rate,
        workers=workers,
        partitions=partitions,
        postgres_cores=rate * POSTGRES_CPU_US_PER_ROW / 1e6,
        wal_mb_s=rate * POSTGRES_WAL_BYTES_PER_ROW / 1e6,
        audit_tb_retained=rate * POSTGRES_STORED_BYTES_PER_ROW * 86_400 * REG_B_DAYS / 1e12,
        kafka_in_mb_s=produced,
        kafka_disk_mb_s=produced * REPLICATION,
    )


def one_primary_limit() -> float:
    """The sustained rate at which the audit outgrows one primary: the first of its CPU and WAL limits."""
    by_cpu = ONE_PRIMARY_CORES * 1e6 / POSTGRES_CPU_US_PER_ROW
    return min(by_cpu, ONE_PRIMARY_WAL_MB_S * 1e6 / POSTGRES_WAL_BYTES_PER_ROW)


def _figure(value: float) -> str:
    return f"{value:,.2f}" if value < 1 else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def table(per_worker: float) -> str:
    lines = [
        "| applications/s | workers | partitions | Postgres CPU for the audit | WAL | audit kept 25 months "
        "| Kafka produced (written 3 times) | one Postgres primary? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in (plan(rate, per_worker) for rate in RATES):
        lines.append(
            f"| {p.rate:,} | {p.workers:,} | {p.partitions:,} | {_figure(p.postgres_cores)} cores "
            f"| {_figure(p.wal_mb_s)} MB/s | {_figure(p.audit_tb_retained)} TB | {_figure(p.kafka_in_mb_s)} MB/s "
            f"({_figure(p.kafka_disk_mb_s)} MB/s) | {'yes' if p.one_primary else '**no**'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    rate = worker_rate()
    print(f"one worker: {rate:,.0f} applications/s (bench/results/latest.json), planned at {PLAN_AT:.0%}")
    print(table(rate))
    print(f"one primary suffices up to ~{one_primary_limit():,.0f} applications/s sustained")
