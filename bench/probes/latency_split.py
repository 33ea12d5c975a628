"""Probe: where an application's latency goes, on Apache Kafka, one bench system at a steady offered rate.

Starts the test stack on Apache Kafka and the system (a `bench.run` system name), offers RATE applications/s
for 5 s, and splits each application's latency in three, with readers in this process:
- send -> input visible: until a reader of the input topic has the application (the offering producer and
  the broker);
- input visible -> decision produced: the decision record's timestamp, set when the system produced it;
- decision produced -> visible: until a read_committed reader of the decision topic has it (for an
  exactly_once system, when its transaction commits).
The readers poll with 10 ms fetch waits: they load the broker too (~17 % of a core each, idle).

    python -m bench.probes.latency_split streamer_1_worker_at_least_once 1000
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.run import SYSTEMS, Run, offer
from streamer.local.produce import publish
from streamer.local.stack import LocalStack
from streamer.local.synthetic import ApplicationFactory

SECONDS = 5.0


class Arrivals(threading.Thread):
    """Per key: (wall time this reader had the record, the record's own timestamp in seconds)."""

    def __init__(self, bootstrap: str, topic: str, isolation: str) -> None:
        super().__init__(daemon=True)
        self.seen: dict[bytes, tuple[float, float]] = {}
        self._stop_event = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{topic}",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                                   "isolation.level": isolation})
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])

    def run(self) -> None:
        while not self._stop_event.is_set():
            for m in self._consumer.consume(10_000, 0.05):
                key = m.key()
                if m.error() is None and isinstance(key, bytes) and key not in self.seen:
                    self.seen[key] = (time.time(), m.timestamp()[1] / 1000.0)
        self._consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"
    return " / ".join(f"{ordered[int(q * (len(ordered) - 1))]:,.0f}" for q in (0.5, 0.99))


def main(system_name: str, rate: float) -> None:
    system = next(s for s in SYSTEMS if s.name == system_name)
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp), broker="kafka") as stack:
        run = Run(stack, system)
        run.start(Path(tmp))
        factory = ApplicationFactory(seed=7)
        warm = list(factory.mixed(50, 0))
        publish(run.settings, warm)
        while run.completed() < len(warm):  # the system has joined its groups and scores
            time.sleep(0.2)
        inputs = Arrivals(run.settings.kafka_bootstrap, run.settings.input_topic, "read_uncommitted")
        decisions = Arrivals(run.settings.kafka_bootstrap, run.settings.decision_topic, "read_committed")
        inputs.start()
        decisions.start()
        wall_minus_monotonic = time.time() - time.monotonic()
        sent = offer(run.settings, list(factory.mixed(int(rate * SECONDS), 0)), rate)
        time.sleep(8)
        inputs.stop()
        decisions.stop()
        run.stop()
    both = [k for k in sent if k in inputs.seen and k in decisions.seen]
    sent_at = {k: t + wall_minus_monotonic for k, t in sent.items()}
    print(f"{system_name} at {rate:,.0f}/s for {SECONDS:.0f} s: {len(both):,} of {len(sent):,} seen both ways; "
          "p50 / p99 in ms")
    splits = {
        "send -> input visible": [1000 * (inputs.seen[k][0] - sent_at[k]) for k in both],
        "input visible -> decision produced": [1000 * (decisions.seen[k][1] - inputs.seen[k][0]) for k in both],
        "decision produced -> visible": [1000 * (decisions.seen[k][0] - decisions.seen[k][1]) for k in both],
        "send -> decision visible": [1000 * (decisions.seen[k][0] - sent_at[k]) for k in both],
    }
    for name, values in splits.items():
        print(f"  {name:36s} {_quantiles(values)}")

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "streamer_1_worker", float(sys.argv[2]) if len(sys.argv) > 2 else 1000)
