"""Start-up time of one worker: from process start to its first decision and its first audit row.

A KEDA scale-out pod is useless until it decides. Each run gets fresh topics, provisioned first as in
production (the worker creates none), with a backlog of applications waiting, and a fresh app id (so fresh
consumer groups). Then `python -m streamer worker` is spawned, and every milestone is measured in seconds
from just before the spawn:

- `pipeline_starting`: imports and Faust's boot done, our Pipeline service starting (the worker's log);
- `faust_ready`: Faust's "Ready", after the Pipeline started its loops (the worker's log);
- `scorer_assigned`, `audit_assigned`: each loop's first assignment (the worker's log);
- `ready`: /readyz first answered 200 (polled every 25 ms, so up to 25 ms late);
- `first_decision`: the earliest decision record's timestamp, which the worker's producer sets (one machine,
  one clock);
- `first_audit_row`: the first audit row visible in Postgres (polled every 25 ms).

Target (issue 12, defect 10): the first decision within 2 s of process start, on Apache Kafka. The test
broker sets `group.initial.rebalance.delay.ms=0`; a production broker's default (3 s) delays only the first
member of an empty group, not a pod joining a group that has members.

    python -m bench.startup                  # Apache Kafka, 5 runs; writes bench/results/startup-kafka.json
    python -m bench.startup --broker tansu --runs 3 --out /tmp/startup-tansu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow

from streamer.local.produce import publish
from streamer.local.stack import BrokerKind, LocalStack, WorkerProcess
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
POLL_S = 0.025
MILESTONES = ("pipeline_starting", "faust_ready", "scorer_assigned", "audit_assigned", "ready",
              "first_decision", "first_audit_row")


def _logged(log: Path) -> dict[str, float]:
    """Wall-clock times of the milestones the worker logs (its JSON lines carry UTC timestamps)."""
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line) if line.startswith("{") else {}
        except ValueError:
            continue
        event = str(record.get("event", ""))
        name = ("pipeline_starting" if event.endswith("Pipeline]: Starting...")
                else "faust_ready" if event.endswith("]: Ready")
                else f"{record.get('loop')}_assigned" if event == "partitions_assigned" else None)
        if name and name not in found:
            found[name] = datetime.fromisoformat(record["timestamp"]).timestamp()
    return found


def _watch(worker: WorkerProcess, db: psycopg.Connection[TupleRow], decision_topic: str) -> dict[str, float]:
    """Wall-clock times at which /readyz first said ready and the first audit row was visible."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    query = "SELECT EXISTS (SELECT 1 FROM decision_audit WHERE source_topic = %s)"
    while len(seen) < 2:
        if worker.process is None or worker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker exited, or was not ready with an audit row within 60 s: {seen}")
        if "ready" not in seen and worker.ready():
            seen["ready"] = time.time()
        if "first_audit_row" not in seen and (row := db.execute(query, (decision_topic,)).fetchone()) and row[0]:
            seen["first_audit_row"] = time.time()
        time.sleep(POLL_S)
    return seen


def one_run(stack: LocalStack, work: Path, backlog: int) -> dict[str, float]:
    """Seconds from the worker's spawn to each milestone."""
    tag = uuid.uuid4().hex[:8]
    names = {"input_topic": f"apps-{tag}", "decision_topic": f"decisions-{tag}", "dlq_topic": f"dlq-{tag}",
             "app_id": f"startup-{tag}"}
    s = stack.settings(**names)
    ensure_topics(s, [s.input_topic, s.decision_topic, s.dlq_topic])
    publish(s, ApplicationFactory(run_id=tag).mixed(backlog, 0))  # new ids: the audit dedupes decisions
    env = stack.env(**{f"STREAMER_{k.upper()}": v for k, v in names.items()},
                    STREAMER_CREATE_TOPICS="false", STREAMER_MODEL_DIR=str(REPO / "onnx_models"),
                    STREAMER_DATA_DIR=str(work / f"data-{tag}"))
    worker = WorkerProcess(env, work / f"worker-{tag}.log", cwd=REPO)
    stack.workers.append(worker)
    with psycopg.connect(stack.postgres.url, autocommit=True) as db:
        started = time.time()
        worker.start()
        try:
            times = _watch(worker, db, s.decision_topic)
        except RuntimeError as exc:
            worker.stop()
            raise RuntimeError(f"{exc}; its log: {work / f'worker-{tag}.log'} (keep it with --work)") from exc
    worker.stop()
    stack.workers.remove(worker)
    reader = TopicReader(s, s.decision_topic)
    try:
        if not reader.read_until(lambda records: len(records) >= backlog, 30):
            raise RuntimeError(f"{len(reader.records)} of {backlog} decisions")
        times["first_decision"] = min(m.timestamp()[1] for m in reader.records) / 1000
    finally:
        reader.close()
    times.update(_logged(work / f"worker-{tag}.log"))
    return {name: round(times[name] - started, 3) for name in MILESTONES if name in times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=["kafka", "tansu"], default="kafka")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=100, help="applications waiting when the worker starts")
    parser.add_argument("--out", type=Path, help="default: bench/results/startup-<broker>.json")
    parser.add_argument("--work", type=Path, help="keep the servers' data and the worker logs here")
    args = parser.parse_args()
    broker: BrokerKind = args.broker
    out: Path = args.out or REPO / "bench" / "results" / f"startup-{broker}.json"
    with tempfile.TemporaryDirectory() as tmp, LocalStack(work := args.work or Path(tmp), broker=broker) as stack:
        runs = []
        for i in range(args.runs):
            runs.append(one_run(stack, work, args.backlog))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()), flush=True)
    summary = {name: {"median": round(statistics.median(r[name] for r in runs), 3),
                      "min": min(r[name] for r in runs), "max": max(r[name] for r in runs)}
               for name in MILESTONES if all(name in r for r in runs)}
    first = summary["first_decision"]["median"]
    print(f"median first decision {first:.2f} s after process start (target {TARGET_S:.0f} s: "
          f"{'met' if first <= TARGET_S else 'missed'}); median first audit row "
          f"{summary['first_audit_row']['median']:.2f} s")
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, "-m", "bench.startup", *sys.argv[1:]]), "broker": broker,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "machine": platform.platform(), "backlog": args.backlog, "target_s": TARGET_S,
        "summary": summary, "runs": runs,
    }, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
