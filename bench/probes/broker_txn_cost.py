"""Probe: the Apache Kafka node's CPU for what an exactly_once worker and the bench's readers ask of it.

Starts the test stack's single Apache Kafka node and measures its CPU (% of one core, 8 s each):
1. idle, with an 8-partition topic;
2. one idle reader polling that topic with fetch.wait.max.ms 500, then 10 (the bench's latency reader);
3. a transactional producer committing every 100 ms (STREAMER_COMMIT_INTERVAL_MS' default) while
   producing ~1,000 records/s, alone and then with a read_committed reader (fetch.wait.max.ms 500).

    python -m bench.probes.broker_txn_cost
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer.local.stack import LocalStack

TOPIC, PARTITIONS, SAMPLE_S = "probe", 8, 8.0


def _cpu_percent(broker: psutil.Process) -> float:
    before = float(sum(broker.cpu_times()[:2]))
    time.sleep(SAMPLE_S)
    return 100 * (float(sum(broker.cpu_times()[:2])) - before) / SAMPLE_S


def _reader(bootstrap: str, wait_ms: int, isolation: str, stop: threading.Event) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{wait_ms}-{isolation}",
                         "fetch.wait.max.ms": wait_ms, "isolation.level": isolation})
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_END) for p in range(PARTITIONS)])
    while not stop.is_set():
        consumer.consume(1000, 0.05)
    consumer.close()


def _transactions(bootstrap: str, stop: threading.Event) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "probe", "linger.ms": 5})
    producer.init_transactions(10)
    while not stop.is_set():
        producer.begin_transaction()
        began = time.monotonic()
        while time.monotonic() - began < 0.1:
            producer.produce(TOPIC, key=str(time.monotonic()).encode(), value=b"x" * 300)
            producer.poll(0)
            time.sleep(0.001)
        producer.commit_transaction(10)


def _during(work: Callable[[threading.Event], None], measure: Callable[[], float]) -> float:
    stop = threading.Event()
    thread = threading.Thread(target=work, args=(stop,), daemon=True)
    thread.start()
    time.sleep(2)
    try:
        return measure()
    finally:
        stop.set()
        thread.join(15)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp), broker="kafka") as stack:
        bootstrap = stack.settings().kafka_bootstrap
        broker = psutil.Process(stack.kafka.pid)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
            future.result()
        time.sleep(3)

        def measure() -> float:
            return _cpu_percent(broker)

        print(f"idle node, one {PARTITIONS}-partition topic       {measure():4.0f} % of a core")
        for wait in (500, 10):
            cpu = _during(partial(_reader, bootstrap, wait, "read_committed"), measure)
            print(f"+ one idle reader, fetch.wait.max.ms {wait:3d}        {cpu:4.0f} %")
        txn_stop = threading.Event()
        producer = threading.Thread(target=_transactions, args=(bootstrap, txn_stop), daemon=True)
        producer.start()
        time.sleep(3)
        try:
            print(f"transactions every 100 ms, ~1,000 records/s    {measure():4.0f} %")
            cpu = _during(partial(_reader, bootstrap, 500, "read_committed"), measure)
            print(f"  + one read_committed reader (wait 500 ms)    {cpu:4.0f} %")
        finally:
            txn_stop.set()
            producer.join(15)


if __name__ == "__main__":
    main()
