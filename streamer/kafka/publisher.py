"""Produce a batch of records and return only when the broker has acknowledged every one of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message, Producer


@dataclass(frozen=True)
class OutboundRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)


class DeliveryFailed(Exception):
    """The broker did not acknowledge some records; the batch must be retried (ids make that safe)."""


class Publisher:
    """Wraps an idempotent Producer. Not thread-safe: one per batch loop."""

    def __init__(self, config: dict[str, object]) -> None:
        self._producer = Producer(config)
        self._errors: list[KafkaError] = []
        self._delivered_ends: dict[tuple[str, int], int] = {}

    def delivered_ends(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): one past the highest offset the broker acknowledged to us."""
        return dict(self._delivered_ends)

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self._errors.clear()
        for record in records:
            self._produce(record)
        while len(self._producer) > 0:
            self._producer.flush(1.0)
        if self._errors:
            first = self._errors[0]
            raise DeliveryFailed(f"{len(self._errors)} of {len(records)} records not delivered: {first}")

    def close(self) -> None:
        self._producer.flush(10.0)

    def _produce(self, record: OutboundRecord) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers,
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then try again
                self._producer.poll(0.05)

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(error)
            return
        key = (message.topic() or "", message.partition() or 0)
        end = (message.offset() or 0) + 1
        if end > self._delivered_ends.get(key, 0):
            self._delivered_ends[key] = end
