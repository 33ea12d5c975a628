"""Produce records and know when the broker has acknowledged every one of them."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamer.logging import get_logger

log = get_logger(__name__)


class OutboundRecord(NamedTuple):
    """A NamedTuple, not a dataclass: the scorer builds one per decision, and this is 4 times cheaper to make."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None
    # A dead letter: one the broker refuses for its size may be replaced by a smaller one (`too_large`), so it
    # needs a delivery callback of its own. Decisions carry headers too, and share one callback.
    reducible: bool = False


# A record refused for its size: by librdkafka at produce() (message.max.bytes counts key, value and
# headers) or by the broker (the topic's max.message.bytes; MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE).
# Every retry would be refused the same way.
TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})
TooLarge = Callable[[OutboundRecord], OutboundRecord | None]


class DeliveryFailed(Exception):
    """The broker did not acknowledge some records; the batch must be retried (ids make that safe)."""


class PendingDelivery:
    """The acknowledgements of one batch of records (a `batch_loop.Pending`)."""

    def __init__(
        self, publisher: Publisher, records: Sequence[OutboundRecord], on_success: Callable[[], None] | None
    ) -> None:
        self._publisher = publisher
        self._records = records  # kept for again(): a redo publishes these very bytes
        self._remaining = len(records)
        self._errors: list[KafkaError] = []
        self._refused: list[tuple[KafkaError, OutboundRecord]] = []  # too large: to be replaced by finished()
        self._raised: Exception | None = None
        self._on_success = on_success
        self._generation = publisher.generation  # a replaced producer never reports on these records

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        self._remaining -= 1
        if error is not None:
            self._errors.append(error)
            self._publisher.note_error(error)
        else:
            self._publisher.record_delivery(message)

    def on_delivery_of(self, record: OutboundRecord) -> Callable[[KafkaError | None, Message], None]:
        """The delivery callback of a record that may be replaced if refused for its size. A delivery report
        carries no headers, so the replacement is made from the record itself."""

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None and self._publisher.replaces(error):
                self._refused.append((error, record))  # produced from finished(), not in librdkafka's callback
            else:
                self.on_delivery(error, message)

        return delivered

    def fail(self, error: Exception) -> None:
        self._raised = error

    def finished(self) -> bool:
        if self._remaining > 0 and self._raised is None and not self._orphaned():
            self._publisher.serve(0)
            self._replace_refused()
        return (
            self._remaining <= 0 or self._raised is not None or self._publisher.fatal is not None or self._orphaned()
        )

    def _replace_refused(self) -> None:
        while self._refused and self._raised is None:
            error, record = self._refused.pop(0)
            try:
                replaced = self._publisher.produce_instead(record, error, self.on_delivery)
            except KafkaException as exc:
                self.fail(DeliveryFailed(f"producer failed: {exc}"))
                return
            if not replaced:  # the record failed after all
                self._remaining -= 1
                self._errors.append(error)

    def _orphaned(self) -> bool:
        return self._generation != self._publisher.generation

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._publisher.serve(min(remaining, 0.05))
        return True

    def failure(self) -> Exception | None:
        if self._raised is not None:
            return self._raised
        if self._errors:
            return DeliveryFailed(f"{len(self._errors)} records not delivered: {self._errors[0]}")
        if self._remaining > 0 and self._publisher.fatal is not None:
            return DeliveryFailed(f"fatal producer error: {self._publisher.fatal}")
        if self._remaining > 0 and self._orphaned():
            return DeliveryFailed(f"{self._remaining} records dropped with a replaced producer")
        return None

    def succeeded(self) -> None:
        if self._on_success is not None:
            self._on_success()

    def again(self) -> PendingDelivery:
        """The same records produced again: a retried batch keeps its decisions (ids, model, timestamps)."""
        return self._publisher.publish_async(self._records, self._on_success)


class Publisher:
    """Wraps an idempotent Producer. Not thread-safe: one per batch loop."""

    def __init__(self, config: dict[str, object], too_large: TooLarge | None = None) -> None:
        """`too_large` makes what is published instead of a record refused for its size (None: the batch fails)."""
        self._config = {**config, "error_cb": self._on_error}
        self._too_large = too_large
        self._producer = Producer(self._config)
        self.fatal: KafkaError | None = None
        self.generation = 0
        self._delivered_ends: dict[tuple[str, int], int] = {}

    def delivered_ends(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): one past the highest offset the broker acknowledged to us."""
        return dict(self._delivered_ends)

    def publish_async(
        self, records: Sequence[OutboundRecord], on_success: Callable[[], None] | None = None
    ) -> PendingDelivery:
        """Hand the records to the producer; the result says when all are acknowledged, or that one failed."""
        if self.fatal is not None:
            self._renew()
        pending = PendingDelivery(self, records, on_success)
        on_delivery, produce = pending.on_delivery, self._producer.produce
        try:
            for record in records:
                topic, key, value, headers, reducible = record
                # Dead letters get a callback of their own, to be replaced if refused for their size; decisions
                # share one: this runs once per decision.
                callback = pending.on_delivery_of(record) if reducible else on_delivery
                try:  # the common case inline
                    produce(topic, value=value, key=key, headers=headers or None, on_delivery=callback)
                except BufferError:
                    self._produce(record, callback)
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if not (isinstance(error, KafkaError) and self.produce_instead(record, error, on_delivery)):
                        raise
        except KafkaException as exc:  # a fatal producer error surfaces here; the retry renews the producer
            if exc.args and isinstance(exc.args[0], KafkaError):
                self.note_error(exc.args[0])
            pending.fail(DeliveryFailed(f"producer failed: {exc}"))
        return pending

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        """Produce and block until every record is acknowledged; raises DeliveryFailed otherwise."""
        pending = self.publish_async(records)
        while not pending.wait(1.0):
            pass
        failure = pending.failure()
        if failure is not None:
            raise failure

    def serve(self, timeout_s: float) -> None:
        """Run delivery callbacks that are due (librdkafka calls them only from poll/flush)."""
        self._guarded(self._producer.poll, timeout_s)

    def record_delivery(self, message: Message) -> None:
        key = (message.topic() or "", message.partition() or 0)
        end = (message.offset() or 0) + 1
        if end > self._delivered_ends.get(key, 0):
            self._delivered_ends[key] = end

    def close(self) -> None:
        self._guarded(self._producer.flush, 10.0)

    def replaces(self, error: KafkaError) -> bool:
        """True if a reducible record (a dead letter) refused with `error` may be replaced: it was too large,
        and `too_large` is set. A replacement refused in turn fails its batch."""
        return self._too_large is not None and error.code() in TOO_LARGE

    def produce_instead(
        self, refused: OutboundRecord, error: KafkaError, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> bool:
        """Produce what `too_large` makes of a record refused for its size; False if nothing replaces it."""
        smaller = self._too_large(refused) if self._too_large is not None and error.code() in TOO_LARGE else None
        if smaller is None:
            return False
        self._produce(smaller, on_delivery)
        return True

    def _produce(self, record: OutboundRecord, on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic, value=record.value, key=record.key, headers=record.headers or None,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then try again
                self._guarded(self._producer.poll, 0.05)
                if self.fatal is not None:
                    raise KafkaException(self.fatal) from None

    def _renew(self) -> None:
        """An idempotent producer that hit a fatal error (e.g. a broker that lost its state) is unusable."""
        log.warning("producer_renewed", after=str(self.fatal))
        with contextlib.suppress(KafkaException):  # nothing more to salvage from it
            self._producer.purge()
        self._producer = Producer(self._config)
        self.generation += 1
        self.fatal = None

    def _guarded(self, call: Callable[[float], object], timeout_s: float) -> None:
        """Call poll/flush; a fatal client error retires the producer instead of escaping.

        confluent-kafka raises a fatal error (e.g. OUT_OF_ORDER_SEQUENCE_NUMBER from a broker that lost
        its state) out of poll(): as a KafkaException, or, when it went through a callback first, as a
        bare KafkaError, whose type is outside the BaseException hierarchy (only a bare except catches it).
        """
        try:
            call(timeout_s)
        except:  # noqa: E722
            raised = sys.exc_info()[1]
            error = raised.args[0] if isinstance(raised, KafkaException) and raised.args else raised
            if not isinstance(error, KafkaError):
                raise
            self.fatal = error

    def note_error(self, error: KafkaError) -> None:
        """A fatal error (seen here, in a delivery report or raised by produce) retires this producer.

        So does a record that timed out: the producer may be stuck on an id the broker no longer knows
        (a broker that restarted empty), and a new producer gets a new id.
        """
        if error.fatal() or error.code() in (KafkaError._FATAL, KafkaError._MSG_TIMED_OUT):
            self.fatal = error

    def _on_error(self, error: KafkaError) -> None:
        self.note_error(error)
