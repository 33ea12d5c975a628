"""Probe: on Tansu, consumers polling a topic with short fetch waits starve the producer writing to it.

One producer sends 5,000 records at 1,000/s to topic `t`; consumer A reads `t` (fetch.wait.max.ms 10)
and measures latency; a second consumer B polls either another topic or `t` itself, with its own wait.
Prints the producer's acknowledgement latency and A's end-to-end latency (p50/p99, ms).

    python -m bench.probes.tansu_fetch_starvation
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, Producer

from streamer.config import Settings
from streamer.local.embedded import EmbeddedKafka
from streamer.runtime.topics import ensure_topics


def _quantiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return round(values[len(values) // 2], 1), round(values[int(len(values) * 0.99)], 1)


def run(second_topic: str, second_wait_ms: int) -> dict[str, object]:
    kafka = EmbeddedKafka().start()
    try:
        settings = Settings(kafka_bootstrap=kafka.bootstrap, topic_partitions=8)
        ensure_topics(settings, ["t", "other"])
        common = {"bootstrap.servers": kafka.bootstrap, "enable.auto.commit": False, "session.timeout.ms": 6000}
        reader = Consumer({**common, "group.id": "a", "fetch.wait.max.ms": 10, "auto.offset.reset": "latest"})
        reader.subscribe(["t"])
        second = Consumer({**common, "group.id": "b", "fetch.wait.max.ms": second_wait_ms})
        second.subscribe([second_topic])
        while not reader.assignment():
            reader.poll(0.1)
        latencies: list[float] = []
        acks: list[float] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for m in reader.consume(1000, 0.005):
                    if m.error() is None:
                        latencies.append(time.time() * 1000 - m.timestamp()[1])

        def poll_second() -> None:
            while not stop.is_set():
                second.poll(0.5)

        threads = [threading.Thread(target=read), threading.Thread(target=poll_second)]
        for t in threads:
            t.start()
        time.sleep(1)
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 1})
        started = time.monotonic()
        for i in range(5000):
            delay = started + i / 1000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()

            def acked(error: object, message: object, s: float = sent) -> None:
                acks.append(1000 * (time.time() - s))

            producer.produce("t", key=str(i).encode(), value=b"x" * 600, on_delivery=acked)
            producer.poll(0)
        producer.flush()
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        reader.close()
        second.close()
        return {"second_consumer_topic": second_topic, "second_fetch_wait_ms": second_wait_ms,
                "ack_p50_p99_ms": _quantiles(acks), "e2e_p50_p99_ms": _quantiles(latencies)}
    finally:
        kafka.stop()


if __name__ == "__main__":
    for topic, wait in (("other", 10), ("t", 10), ("t", 100), ("t", 500)):
        print(run(topic, wait), flush=True)
