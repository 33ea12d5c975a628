"""Probe: the embedded Tansu broker's CPU for a producer alone, at a steady rate, by partitions and linger.

No worker and no consumer: one keyed producer offers RATE applications/s for 10 s to a fresh topic of
PARTITIONS partitions with LINGER_MS, the way bench.run offers load, and the broker's CPU is read from
psutil. It shows how much of a core the broker spends before streamer does anything.

    python -m bench.probes.tansu_produce_cost 8 5000 5
"""

from __future__ import annotations

import sys
import time

import psutil
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer.local.embedded import EmbeddedKafka
from streamer.local.synthetic import ApplicationFactory

TOPIC = "loan-applications"


def main(partitions: int, rate: float, linger_ms: int, seconds: float = 10.0) -> None:
    kafka = EmbeddedKafka().start()
    try:
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_topics([NewTopic(TOPIC, partitions, 1)])[TOPIC].result(30)
        payloads = list(ApplicationFactory(1).mixed(int(rate * seconds), 0))
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": linger_ms})
        broker = psutil.Process(kafka.pid)
        cpu_before, started = sum(broker.cpu_times()[:2]), time.monotonic()
        for i, payload in enumerate(payloads):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.produce(TOPIC, key=payload.key, value=payload.value)
            producer.poll(0)
        producer.flush(60)
        elapsed = time.monotonic() - started
        cpu = sum(broker.cpu_times()[:2]) - cpu_before
        print(f"partitions={partitions} rate={rate:.0f}/s linger.ms={linger_ms}: "
              f"broker CPU {100 * cpu / elapsed:.0f} % of a core over {elapsed:.1f} s "
              f"({1e6 * cpu / len(payloads):.0f} µs per record)")
    finally:
        kafka.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 5)
