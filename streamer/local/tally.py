"""Read whole topics without a consumer group (direct assignment; Tansu's slow group joins and wrong
high watermarks do not matter), for the demo's accounting and the tests.

The reader waits up to 500 ms per fetch on purpose: on Tansu, a second consumer polling a topic with
short fetch waits starves the producer writing to it (measured: produce acks went from 4 ms to 350 ms
at p50 with two 10 ms-wait consumers on one topic), and here that producer is the worker under test."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streamer.config import Settings
from streamer.runtime.clients import common_config


class TopicReader:
    """Accumulates every record of a topic, from its beginning, as `read_more()` is called."""

    def __init__(self, settings: Settings, topic: str, read_committed: bool = True) -> None:
        """`read_committed`: what a downstream consumer sees (records of aborted transactions left out)."""
        self.topic = topic
        self.records: list[Message] = []
        self._consumer = Consumer(
            {**common_config(settings), "group.id": "streamer-tally", "enable.auto.commit": False,
             "fetch.wait.max.ms": 500,
             "isolation.level": "read_committed" if read_committed else "read_uncommitted"}
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def read_more(self, timeout_s: float = 0.2) -> int:
        """Consume what is there now; returns how many records arrived."""
        before = len(self.records)
        while True:
            batch = self._consumer.consume(10_000, timeout_s)
            self.records.extend(m for m in batch if m.error() is None)
            if len(batch) < 10_000:
                return len(self.records) - before

    def read_until(self, done: Callable[[list[Message]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.read_more()
            if done(self.records):
                return True
        return done(self.records)

    def close(self) -> None:
        self._consumer.close()
