"""Probe: one streamer worker at a steady offered rate; latency from the decisions' own latency_ms.

Starts the embedded broker + Postgres + one worker, offers RATE applications/s for SECONDS, then reads
the decisions (only afterwards, so the reader does not load the broker during the run) and prints p50/p99
of `latency_ms` (Kafka timestamp of the application -> decision), with the broker's and the worker's CPU.

    STREAMER_TOPIC_PARTITIONS=2 python -m bench.probes.steady_latency 1000 10
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.run import offer
from streamer.local.stack import LocalStack
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main(rate: float, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp)) as stack:
        worker = stack.start_worker()
        settings = stack.settings()
        payloads = list(ApplicationFactory(5).mixed(int(rate * seconds), 0))
        broker, scorer = psutil.Process(stack.kafka.pid), psutil.Process(worker.process.pid)  # type: ignore[union-attr]
        started, broker_cpu, worker_cpu = time.time(), _cpu(broker), _cpu(scorer)
        offer(settings, payloads, rate)
        elapsed = time.time() - started
        broker_cpu, worker_cpu = _cpu(broker) - broker_cpu, _cpu(scorer) - worker_cpu
        reader = TopicReader(settings, settings.decision_topic)
        reader.read_until(lambda records: len(records) >= len(payloads), 60)
        reader.close()
        latencies = sorted(json.loads(m.value() or b"{}")["latency_ms"] for m in reader.records)
        n = len(latencies)
        print(f"partitions={settings.topic_partitions} rate={rate:.0f}/s decisions={n}/{len(payloads)} "
              f"p50={latencies[n // 2]:.1f} ms p99={latencies[int(n * 0.99)]:.1f} ms "
              f"broker_cpu={100 * broker_cpu / elapsed:.0f}% worker_cpu={100 * worker_cpu / elapsed:.0f}%")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1000.0, float(sys.argv[2]) if len(sys.argv) > 2 else 10.0)
