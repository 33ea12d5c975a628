"""Probe: an idempotent producer across a Tansu kill and restart (the broker comes back empty).

Produces 200 records, SIGKILLs the broker, starts it again on the same port, re-creates the topic and
produces 200 more with the same producer. The restarted broker does not know the producer id; librdkafka
retries without reporting anything until message.timeout.ms. Then a new producer delivers at once.

    python -m bench.probes.tansu_restart_producer [MESSAGE_TIMEOUT_MS]   (default 15000)
"""

from __future__ import annotations

import os
import signal
import sys
import time

from confluent_kafka import KafkaError, Message, Producer

from streamer.config import Settings
from streamer.local.embedded import EmbeddedKafka
from streamer.runtime.topics import ensure_topics

COUNT = 200


def _send(producer: Producer, wait_s: float) -> tuple[float | None, set[str]]:
    """Produce COUNT records; (seconds to the first delivery report, the distinct outcomes)."""
    reports: list[tuple[float, str]] = []
    started = time.monotonic()

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        reports.append((time.monotonic() - started, "delivered" if error is None else error.name()))

    for i in range(COUNT):
        producer.produce("probe", key=str(i).encode(), value=b"x" * 400, on_delivery=on_delivery)
    while len(reports) < COUNT and time.monotonic() - started < wait_s:
        producer.poll(0.2)
    return (reports[0][0] if reports else None), {outcome for _, outcome in reports}


def main(timeout_ms: int) -> None:
    kafka = EmbeddedKafka().start()
    settings = Settings(kafka_bootstrap=kafka.bootstrap, topic_partitions=4)
    try:
        ensure_topics(settings, ["probe"])
        config = {"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True, "acks": "all",
                  "message.timeout.ms": timeout_ms, "log_level": 3}
        producer = Producer(config)
        print("before the restart:", _send(producer, 30))
        assert kafka.pid is not None
        os.kill(kafka.pid, signal.SIGKILL)
        kafka.stop()
        kafka.start()
        ensure_topics(settings, ["probe"])
        first, outcomes = _send(producer, timeout_ms / 1000 + 30)
        print(f"same producer after the restart: first report after {first} s, outcomes {sorted(outcomes)}")
        first, outcomes = _send(Producer(config), 30)
        print(f"a new producer: first report after {first} s, outcomes {sorted(outcomes)}")
    finally:
        kafka.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15_000)
