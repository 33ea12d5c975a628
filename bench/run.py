"""`make bench`: streamer side by side with the baselines, on the same broker and Postgres.

The broker is Apache Kafka (`--broker kafka`, the default: what production runs, and what the latency goal
is judged on) or the embedded Tansu (`--broker tansu`).

For each system: events/s from a backlog (median of 3, with min and max), end-to-end latency
percentiles at offered rates, CPU % per process and peak RSS. Writes bench/results/latest.json,
latest.md and latency.png, and prints streamer's ratio to each baseline.

Throughput: N applications (1 % invalid) are published first; the system starts; the clock runs from
its first decision to the moment the audit table holds a row for every valid application (for
quix_passthrough, which writes no audit rows: until the decision topic holds a record for every one).
Latency: the system runs; applications are offered at a steady rate for a fixed time; each one's
latency is the time from its send to the timestamp its decision record got when the system produced it
(one machine, one clock). Decisions are read only after the offered load ends (a reader polling the
decision topic meanwhile would slow the system's producer on Tansu); systems that fell behind get up to
max(20 s, run length) more to finish, and what is still missing shows in `completed`.

The two Quix systems run in their own venv, .venv/quix (`make bench` builds it; see Makefile).
For a smoke run: `--events 3000 --repeats 1 --rates 500 --seconds 3` (and `--out` outside bench/results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from psycopg.conninfo import make_conninfo

from streamer.audit.migrations import migrate
from streamer.config import Settings
from streamer.local.processes import free_port
from streamer.local.produce import publish
from streamer.local.stack import LocalStack
from streamer.local.synthetic import ApplicationFactory, SamplePayload
from streamer.runtime.topics import ensure_topics

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PY = sys.executable
QUIX_PY = str(REPO / ".venv" / "quix" / "bin" / "python")  # Quix Streams' own venv (Makefile)


@dataclass(frozen=True)
class System:
    name: str
    command: list[str]
    processes: int = 1
    backlog: int = 20_000  # applications per throughput run: enough for ~10 s of its work
    audited: bool = True  # False: it writes no audit rows, and is done when its outputs are on the decision topic
    env: tuple[tuple[str, str], ...] = ()  # extra environment of its processes


SYSTEMS = [
    System("sklearn_per_event", [PY, "-m", "bench.systems.sklearn_per_event"], backlog=2_000),
    System("faust_per_event", [PY, "-m", "faust", "-A", "bench.systems.faust_per_event", "worker", "-l", "warn"],
           backlog=8_000),
    System("handrolled_batch", [PY, "-m", "bench.systems.handrolled_batch"], backlog=40_000),
    System("streamer_1_worker", [PY, "-m", "streamer", "worker"], backlog=100_000),  # exactly_once, the default
    System("streamer_1_worker_at_least_once", [PY, "-m", "streamer", "worker"], backlog=100_000,
           env=(("STREAMER_PROCESSING_GUARANTEE", "at_least_once"),)),
    System("streamer_2_workers", [PY, "-m", "streamer", "worker"], processes=2, backlog=100_000),
    System("quix_streams", [QUIX_PY, "-m", "bench.systems.quix_streams"], backlog=20_000),
    System("quix_passthrough", [QUIX_PY, "-m", "bench.systems.quix_passthrough"], backlog=200_000, audited=False),
]


@dataclass
class Run:
    """One system started on fresh topics and a fresh database."""

    stack: LocalStack
    system: System
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _watermarks: Consumer | None = None

    def __post_init__(self) -> None:
        if self.stack.broker_kind == "tansu":
            # A fresh broker for every run: Tansu keeps every record in memory, and a broker carrying the
            # earlier runs' data would slow the later systems down. (Kafka keeps them on disk.)
            self.stack.kafka.stop()
            self.stack.kafka.start()
        database = f"bench_{self.tag}"
        with psycopg.connect(self.stack.postgres.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self.database_url = make_conninfo(self.stack.postgres.url, dbname=database)
        migrate(self.database_url)
        self.settings = Settings(
            kafka_bootstrap=self.stack.kafka.bootstrap, database_url=self.database_url,
            input_topic=f"apps-{self.tag}", decision_topic=f"decisions-{self.tag}", dlq_topic=f"dlq-{self.tag}",
            app_id=f"bench-{self.tag}", model_dir=REPO / "onnx_models", broker_profile=self.stack.broker_kind,
        )
        s = self.settings
        ensure_topics(s, [s.input_topic, s.decision_topic, s.dlq_topic])

    def start(self, log_dir: Path) -> None:
        s = self.settings
        for i in range(self.system.processes):
            env = {**os.environ, "STREAMER_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
                   "STREAMER_DATABASE_URL": self.database_url, "STREAMER_INPUT_TOPIC": s.input_topic,
                   "STREAMER_DECISION_TOPIC": s.decision_topic, "STREAMER_DLQ_TOPIC": s.dlq_topic,
                   "STREAMER_APP_ID": s.app_id, "STREAMER_MODEL_DIR": str(s.model_dir),
                   "STREAMER_WEB_PORT": str(free_port()), "STREAMER_DATA_DIR": str(log_dir / f"data-{self.tag}-{i}"),
                   "STREAMER_LOG_FORMAT": "json", "STREAMER_LOG_LEVEL": "WARNING",
                   "STREAMER_BROKER_PROFILE": self.stack.broker_kind, **dict(self.system.env)}
            log = open(log_dir / f"{self.system.name}-{self.tag}-{i}.log", "ab")  # noqa: SIM115 (child owns it)
            self.processes.append(subprocess.Popen(self.system.command, env=env, cwd=REPO, stdout=log,
                                                   stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._watermarks is not None:
            self._watermarks.close()

    def completed(self) -> int:
        """Audit rows; for a system that writes none, records on the decision topic."""
        return self.audit_rows() if self.system.audited else self.decision_records()

    def decision_records(self) -> int:
        topic = self.settings.decision_topic
        if self._watermarks is None:
            self._watermarks = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap, "group.id": "bench-count"})
        partitions = self._watermarks.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(self._watermarks.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)

    def audit_rows(self) -> int:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SELECT count(*) FROM decision_audit").fetchone()
        return int(row[0]) if row else 0

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]


class DecisionReader(threading.Thread):
    """Reads the decision topic from the start; remembers when each application's decision was made.

    "Made" is the decision record's timestamp, set by the system's producer when it hands the record over:
    the reader itself polls lazily (500 ms fetch waits), because on Tansu a second consumer polling a topic
    with short fetch waits starves the producer writing to it, i.e. the system under test.
    """

    def __init__(self, settings: Settings, visible: bool = False) -> None:
        """`visible`: when the record reached this (read_committed) reader, not its timestamp: what a consumer
        sees of an exactly_once system, whose decisions show when their transaction commits. Apache Kafka only."""
        super().__init__(daemon=True)
        self.arrived: dict[bytes, float] = {}
        self.first: float | None = None
        self._visible = visible
        self._stop_event = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-reader",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 10 if visible else 500,
                                   "isolation.level": "read_committed"})
        topic = settings.decision_topic
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def run(self) -> None:
        while not self._stop_event.is_set():
            batch = self._consumer.consume(10_000, 0.05)
            now = time.monotonic()
            offset = now - time.time()  # wall clock (record timestamps) -> monotonic
            for m in batch:
                key = m.key()
                if m.error() is None and isinstance(key, bytes) and key not in self.arrived:
                    self.arrived[key] = now if self._visible else m.timestamp()[1] / 1000.0 + offset
            if batch and self.first is None:
                self.first = min(self.arrived.values())
        self._consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


class Sampler(threading.Thread):
    """CPU seconds and peak RSS of named process groups while a run lasts."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        super().__init__(daemon=True)
        self._groups = groups
        self._stop_event = threading.Event()
        self.peak_rss_mb: dict[str, float] = dict.fromkeys(groups, 0.0)
        self._cpu_start: dict[str, float] = {}
        self.cpu_percent: dict[str, float] = {}

    def _cpu(self, name: str) -> float:
        total = 0.0
        for pid in self._groups[name]():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    def run(self) -> None:
        started = time.monotonic()
        self._cpu_start = {name: self._cpu(name) for name in self._groups}
        while not self._stop_event.wait(0.25):
            for name, pids in self._groups.items():
                rss = 0
                for pid in pids():
                    with contextlib.suppress(psutil.Error):
                        rss += psutil.Process(pid).memory_info().rss
                self.peak_rss_mb[name] = max(self.peak_rss_mb[name], rss / 2**20)
        wall = time.monotonic() - started
        self.cpu_percent = {n: 100 * (self._cpu(n) - self._cpu_start[n]) / wall for n in self._groups}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def offer(settings: Settings, payloads: list[SamplePayload], rate: float) -> dict[bytes, float]:
    """Send at a steady `rate`; returns each key's send time."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    sent: dict[bytes, float] = {}
    started = time.monotonic()
    for i, p in enumerate(payloads):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[p.key] = time.monotonic()
        while True:
            try:
                producer.produce(settings.input_topic, key=p.key, value=p.value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    return sent


def server_pids(stack: LocalStack) -> dict[str, Callable[[], list[int]]]:
    def postgres() -> list[int]:
        pids = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] == "postgres" and str(stack.postgres.data_dir) in " ".join(proc.info["cmdline"] or []):
                pids.append(proc.pid)
                pids.extend(child.pid for child in proc.children(recursive=True))
        return pids

    return {"broker": lambda: [stack.kafka.pid] if stack.kafka.pid else [], "postgres": postgres}


def throughput_run(stack: LocalStack, system: System, log_dir: Path, timeout_s: float = 600) -> dict[str, Any]:
    run = Run(stack, system)
    payloads = list(ApplicationFactory(seed=hash(run.tag) % 2**31).mixed(system.backlog, 100))
    done_at = sum(p.expected_reason is None for p in payloads) if system.audited else len(payloads)
    publish(run.settings, payloads)
    reader = DecisionReader(run.settings)
    reader.start()
    sampler = Sampler({"system": run.pids, **server_pids(stack)})
    run.start(log_dir)
    sampler.start()
    deadline = time.monotonic() + timeout_s
    try:
        while run.completed() < done_at:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{system.name}: audit incomplete after {timeout_s}s")
            if any(p.poll() is not None for p in run.processes):
                raise RuntimeError(f"{system.name} exited; see {log_dir}")
            time.sleep(0.1)
        done = time.monotonic()
    finally:
        sampler.stop()
        reader.stop()
        run.stop()
    assert reader.first is not None
    return {"events_per_s": system.backlog / (done - reader.first), "applications": system.backlog,
            "seconds": done - reader.first, "cpu_percent": sampler.cpu_percent, "peak_rss_mb": sampler.peak_rss_mb}


def latency_run(stack: LocalStack, system: System, rate: float, seconds: float, log_dir: Path) -> dict[str, Any]:
    run = Run(stack, system)
    run.start(log_dir)
    factory = ApplicationFactory(seed=hash(run.tag) % 2**31)
    warm = [p for p in factory.mixed(50, 0)]
    publish(run.settings, warm)
    deadline = time.monotonic() + 120
    while run.completed() < len(warm):  # every process has joined its groups and scores
        if time.monotonic() > deadline:
            raise TimeoutError(f"{system.name} did not start scoring")
        time.sleep(0.2)
    payloads = list(factory.mixed(int(rate * seconds), 0))
    sampler = Sampler({"system": run.pids, **server_pids(stack)})
    # On Apache Kafka latency runs to when a read_committed reader has the decision (for an exactly_once
    # system, when its transaction commits). On Tansu the decisions are read only after the run, since a
    # reader polling the topic meanwhile would slow the system's own producer down; latency then comes from
    # the records' timestamps.
    visible = stack.broker_kind == "kafka"
    reader = DecisionReader(run.settings, visible=visible)
    if visible:
        reader.start()
    sampler.start()
    sent = offer(run.settings, payloads, rate)
    sampler.stop()
    if not visible:
        reader.start()
    drain_until = time.monotonic() + max(20.0, seconds)
    while time.monotonic() < drain_until and sum(k in reader.arrived for k in sent) < len(sent):
        time.sleep(0.5)
    reader.stop()
    run.stop()
    latencies = sorted(1000 * (reader.arrived[k] - t) for k, t in sent.items() if k in reader.arrived)
    return {"offered_per_s": rate, "sent": len(sent), "completed": len(latencies),
            "latency_to": "read_committed reader" if visible else "decision record timestamp",
            "p50_ms": _quantile(latencies, 0.50), "p99_ms": _quantile(latencies, 0.99),
            "p999_ms": _quantile(latencies, 0.999), "cpu_percent": sampler.cpu_percent,
            "peak_rss_mb": sampler.peak_rss_mb}


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", nargs="*", default=[s.name for s in SYSTEMS])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--events", type=int, help="Applications per throughput run for every system, "
                        "instead of each one's own backlog (smaller for a smoke run).")
    parser.add_argument("--rates", type=float, nargs="*", default=[1000, 5000, 20000],
                        help="Offered rates of the latency runs, applications/s.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of each offered-load run.")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--broker", choices=["kafka", "tansu"], default="kafka")
    args = parser.parse_args()
    chosen = [s for s in SYSTEMS if s.name in args.systems]
    if args.events:
        chosen = [replace(s, backlog=args.events) for s in chosen]
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *sys.argv[1:]]),
        "started_at": datetime.now(UTC).isoformat(), "machine": _machine(), "broker": args.broker, "systems": {},
    }
    with (tempfile.TemporaryDirectory(prefix="streamer-bench-") as tmp,
          LocalStack(Path(tmp), broker=args.broker) as stack):
        log_dir = Path(tmp)
        for system in chosen:
            entry: dict[str, Any] = {"throughput_runs": [], "latency": []}
            for _ in range(args.repeats):
                entry["throughput_runs"].append(throughput_run(stack, system, log_dir))
                print(system.name, "throughput", round(entry["throughput_runs"][-1]["events_per_s"]), flush=True)
            rates = [r["events_per_s"] for r in entry["throughput_runs"]]
            entry["events_per_s"] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
            for rate in args.rates:
                entry["latency"].append(latency_run(stack, system, rate, args.seconds, log_dir))
                print(system.name, "latency", entry["latency"][-1], flush=True)
            results["systems"][system.name] = entry
    results["ratios"] = _ratios(results["systems"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    args.out.with_suffix(".md").write_text(markdown)
    plot(results, args.out.parent / "latency.png")
    print(markdown)


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def _ratios(systems: dict[str, Any]) -> dict[str, float]:
    ours = systems.get("streamer_1_worker")
    if not ours:
        return {}
    return {f"streamer_1_worker / {name}": ours["events_per_s"]["median"] / entry["events_per_s"]["median"]
            for name, entry in systems.items() if name != "streamer_1_worker"}


def render_markdown(results: dict[str, Any]) -> str:
    lines = [f"Command: `{results['command']}` at {results['started_at']} on {results['machine']}",
             f"Broker: {results.get('broker', 'tansu')}", "",
             "| system | events/s median (min-max) | CPU % system / broker / postgres | peak RSS MB |",
             "|---|---|---|---|"]
    for name, e in results["systems"].items():
        r = e["events_per_s"]
        t = e["throughput_runs"][-1]
        cpu = t["cpu_percent"]
        lines.append(f"| {name} | {r['median']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}) | "
                     f"{cpu['system']:.0f} / {cpu['broker']:.0f} / {cpu['postgres']:.0f} | "
                     f"{t['peak_rss_mb']['system']:.0f} |")
    lines += ["", "| system | offered/s | completed | p50 ms | p99 ms | p99.9 ms | CPU % system |",
              "|---|---|---|---|---|---|---|"]
    for name, e in results["systems"].items():
        for lat in e["latency"]:
            def fmt(v: float | None) -> str:
                return "-" if v is None else f"{v:,.1f}"
            lines.append(f"| {name} | {lat['offered_per_s']:,.0f} | {lat['completed']:,}/{lat['sent']:,} | "
                         f"{fmt(lat['p50_ms'])} | {fmt(lat['p99_ms'])} | {fmt(lat['p999_ms'])} | "
                         f"{lat['cpu_percent']['system']:.0f} |")
    lines += ["", "Ratios (streamer, 1 worker, events/s ÷ baseline):", ""]
    lines += [f"- {k}: {v:.1f}x" for k, v in results["ratios"].items()]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only the report needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, e in results["systems"].items():
        points = [(lat["offered_per_s"], lat["p99_ms"]) for lat in e["latency"] if lat["p99_ms"] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (applications/s)")
    ax.set_ylabel("p99 end-to-end latency (ms)")
    ax.set_title(f"Latency against offered load ({results.get('broker', 'tansu')}, same Postgres)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
