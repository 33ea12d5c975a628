"""`make demo`: the whole system on this machine, 10,000 applications through it, and an account of each."""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Message

from streamer.audit.counts import audit_row_count
from streamer.local.produce import publish
from streamer.local.stack import LocalStack
from streamer.local.synthetic import ApplicationFactory, SamplePayload
from streamer.local.tally import TopicReader


@dataclass
class Summary:
    applications: int
    valid: int
    invalid: int
    outcomes: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    audit_rows: int = 0
    duplicate_decision_events: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    models: set[str] = field(default_factory=set)

    @property
    def accounted(self) -> int:
        return sum(self.outcomes.values()) + sum(self.dead_letters.values())

    def render(self) -> str:
        lat = sorted(self.latencies_ms) or [0.0]
        q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
        lines = [
            "streamer demo summary",
            f"  applications in      {self.applications:>8,}  ({self.valid:,} valid, {self.invalid:,} invalid)",
            f"  decisions            {sum(self.outcomes.values()):>8,}  "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(self.outcomes.items())),
            f"  dead letters         {sum(self.dead_letters.values()):>8,}  "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letters.items())),
            f"  audit rows           {self.audit_rows:>8,}",
            f"  accounted for        {self.accounted:>8,} of {self.applications:,}"
            f"  (duplicate decision events: {self.duplicate_decision_events})",
            f"  throughput           {self.applications / max(self.elapsed_s, 1e-9):>8,.0f} applications/s"
            f"  ({self.elapsed_s:.2f} s from first send to last audit row)",
            f"  end-to-end latency   p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms  (Kafka timestamp -> decision)",
            f"  model                {', '.join(sorted(self.models))}",
        ]
        return "\n".join(lines)


def run_demo(
    count: int = 10_000, invalid_every: int = 100, timeout_s: float = 300.0, stop: threading.Event | None = None
) -> Summary:
    """Run it all, account for every application, print the summary; setting `stop` cuts it short."""
    stopping = stop or threading.Event()
    with tempfile.TemporaryDirectory(prefix="streamer-demo-") as tmp, LocalStack(Path(tmp)) as stack:
        print(f"broker {stack.kafka.bootstrap}, postgres {stack.postgres.url}; starting the worker...", flush=True)
        stack.start_worker(wait=False).wait_ready(stop=stopping)
        settings = stack.settings()
        payloads = list(ApplicationFactory(seed=2026).mixed(count, invalid_every))
        print(f"publishing {count:,} applications...", flush=True)
        started = time.monotonic()
        publish(settings, payloads, stop=stopping)
        summary = _account(stack, payloads, started, timeout_s, stopping)
        if stopping.is_set():
            print("demo stopped; shutting down the worker, broker and Postgres", flush=True)
        print(summary.render(), flush=True)
        print(f"logs were in {tmp} (removed on exit)", flush=True)
    return summary


def _account(
    stack: LocalStack, payloads: list[SamplePayload], started: float, timeout_s: float, stop: threading.Event
) -> Summary:
    settings = stack.settings()
    valid = {p.key for p in payloads if p.expected_reason is None}
    invalid = {p.key for p in payloads if p.expected_reason is not None}
    decisions, dlq = TopicReader(settings, settings.decision_topic), TopicReader(settings, settings.dlq_topic)
    deadline = time.monotonic() + timeout_s
    audit = 0
    try:
        while time.monotonic() < deadline and not stop.is_set():
            decisions.read_more()
            dlq.read_more()
            seen = {m.key() for m in decisions.records} | {m.key() for m in dlq.records}
            audit = audit_row_count(stack.postgres.url)
            if seen >= valid | invalid and audit >= len(valid):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        return _summarise(payloads, decisions.records, dlq.records, audit, elapsed)
    finally:
        decisions.close()
        dlq.close()


def _summarise(
    payloads: list[SamplePayload], decision_records: list[Message], dlq_records: list[Message], audit: int,
    elapsed: float,
) -> Summary:
    summary = Summary(
        applications=len(payloads),
        valid=sum(p.expected_reason is None for p in payloads),
        invalid=sum(p.expected_reason is not None for p in payloads),
        audit_rows=audit,
        elapsed_s=elapsed,
    )
    by_id: dict[str, dict[str, object]] = {}
    for record in decision_records:
        decision = json.loads(record.value() or b"{}")
        if decision["decision_id"] in by_id:
            summary.duplicate_decision_events += 1
            continue
        by_id[decision["decision_id"]] = decision
        summary.outcomes[decision["outcome"]] += 1
        summary.latencies_ms.append(float(decision["latency_ms"]))
        summary.models.add(f"{decision['model']['name']} v{decision['model']['version']}")
    for record in dlq_records:
        reason = dict(record.headers() or []).get("dlq.reason") or b"?"
        summary.dead_letters[reason.decode() if isinstance(reason, bytes) else reason] += 1
    return summary


