"""How many decision events the audit has not committed yet, from Kafka offsets.

End offsets come from the broker (ListOffsets) and, on Tansu, from our own producer's delivery reports,
whichever is larger: Tansu answers ListOffsets with 1 for every partition, Apache Kafka correctly.
Committed offsets come from the audit group (OffsetFetch, which does not join the group).
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from streamer.config import Settings
from streamer.runtime.clients import common_config

KnownEnds = Callable[[], dict[tuple[str, int], int]]


class CommittedLag:
    def __init__(self, settings: Settings, topic: str, group: str, known_ends: KnownEnds) -> None:
        self._topic = topic
        self._known_ends = known_ends
        self._consumer = Consumer({**common_config(settings), "group.id": group, "enable.auto.commit": False})

    def measure(self, timeout_s: float = 5.0) -> int:
        metadata = self._consumer.list_topics(self._topic, timeout=timeout_s)
        partitions = [TopicPartition(self._topic, p) for p in metadata.topics[self._topic].partitions]
        committed = {tp.partition: max(tp.offset, 0) for tp in self._consumer.committed(partitions, timeout=timeout_s)}
        known = self._known_ends()
        lag = 0
        for tp in partitions:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
            end = max(high, known.get((self._topic, tp.partition), 0))
            lag += max(0, end - committed.get(tp.partition, 0))
        return lag

    def close(self) -> None:
        self._consumer.close()
