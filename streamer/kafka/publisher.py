"""Produce a batch of records and return only when the broker has acknowledged every one of them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamer.logging import get_logger

log = get_logger(__name__)


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
        self._config = {**config, "error_cb": self._on_error}
        self._producer = Producer(self._config)
        self._fatal: KafkaError | None = None
        self._errors: list[KafkaError] = []
        self._delivered_ends: dict[tuple[str, int], int] = {}

    def delivered_ends(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): one past the highest offset the broker acknowledged to us."""
        return dict(self._delivered_ends)

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        if self._fatal is not None:
            self._renew()
        self._errors.clear()
        try:
            for record in records:
                self._produce(record)
        except KafkaException as exc:  # a fatal producer error surfaces here; the retry renews the producer
            raise DeliveryFailed(f"producer failed: {exc}") from exc
        while len(self._producer) > 0 and self._fatal is None:
            self._producer.flush(1.0)
        if self._fatal is not None:
            raise DeliveryFailed(f"fatal producer error: {self._fatal}")
        if self._errors:
            first = self._errors[0]
            raise DeliveryFailed(f"{len(self._errors)} of {len(records)} records not delivered: {first}")

    def close(self) -> None:
        self._producer.flush(10.0)

    def _renew(self) -> None:
        """An idempotent producer that hit a fatal error (e.g. a broker that lost its state) is unusable."""
        log.warning("producer_renewed", after=str(self._fatal))
        with contextlib.suppress(KafkaException):  # nothing more to salvage from it
            self._producer.purge()
        self._producer = Producer(self._config)
        self._fatal = None

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error

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
