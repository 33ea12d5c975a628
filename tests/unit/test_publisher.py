"""A batch handed to a producer that is then replaced is reported failed, so it is redone, never skipped.

No broker is needed: nothing listens on the address, so no record is ever acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from streamer.runtime.batch_loop import _verdict
from streamer.runtime.publisher import DeliveryFailed, OutboundRecord, Publisher

NOWHERE = {
    "bootstrap.servers": "127.0.0.1:9", "enable.idempotence": True, "message.timeout.ms": 60_000,
    "log_level": 0,  # nothing listens there: no connection-refused lines in the test output
}


def _records(n: int) -> list[OutboundRecord]:
    return [OutboundRecord("decisions", key=f"app-{i}".encode(), value=b"{}") for i in range(n)]


class TestPendingDelivery:
    def test_a_batch_waiting_for_acknowledgement_is_not_durable(self) -> None:
        publisher = Publisher(NOWHERE)
        pending = publisher.publish_async(_records(3))

        assert not pending.wait(0.2)
        assert isinstance(_verdict(pending), TimeoutError)

    def test_records_on_a_timed_out_producer_fail_and_the_next_batch_gets_a_new_producer(self) -> None:
        publisher = Publisher(NOWHERE)
        waiting = publisher.publish_async(_records(3))
        publisher.note_error(KafkaError(KafkaError._MSG_TIMED_OUT))  # as a delivery report would

        assert waiting.finished()
        assert isinstance(waiting.failure(), DeliveryFailed)

        publisher.publish_async(_records(1))  # replaces the producer
        assert publisher.generation == 1
        failure = waiting.failure()  # judged after the replacement: still failed, not "no errors seen"
        assert isinstance(failure, DeliveryFailed) and "replaced producer" in str(failure)
        assert isinstance(_verdict(waiting), DeliveryFailed)

    def test_a_transient_error_does_not_replace_the_producer(self) -> None:
        publisher = Publisher(NOWHERE)
        publisher.note_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        publisher.publish_async(_records(1))

        assert publisher.fatal is None and publisher.generation == 0


FATAL = KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desynchronization", fatal=True)


class _FatalOnPoll:
    """Stands in for a producer whose broker lost its state: confluent-kafka raises the fatal error out of poll()."""

    def __init__(self, bare: bool) -> None:
        self._bare = bare

    def poll(self, timeout_s: float) -> int:
        if self._bare:  # as after a callback: a KafkaError, which `except Exception` does not catch
            raise FATAL  # type: ignore[misc]
        raise KafkaException(FATAL)

    def purge(self) -> None:
        return None


class TestFatalErrorRaisedOutOfPoll:
    @pytest.mark.parametrize("bare", [True, False], ids=["KafkaError", "KafkaException"])
    def test_it_fails_the_batch_and_the_next_batch_gets_a_new_producer(self, bare: bool) -> None:
        publisher = Publisher(NOWHERE)
        waiting = publisher.publish_async(_records(2))
        publisher._producer = _FatalOnPoll(bare)  # type: ignore[assignment]

        assert waiting.wait(1.0)  # finished, not raised
        assert isinstance(waiting.failure(), DeliveryFailed)
        publisher.publish_async(_records(1))
        assert publisher.generation == 1 and publisher.fatal is None


class _Recording:
    """The real producer, keeping the value of every record it took."""

    def __init__(self, publisher: Publisher) -> None:
        self._producer = publisher._producer
        self.values: list[bytes | None] = []
        self.callbacks: list[Callable[[KafkaError | None, Message], None]] = []
        publisher._producer = self  # type: ignore[assignment]

    def produce(self, topic: str, **kwargs: Any) -> None:
        self._producer.produce(topic, **kwargs)
        self.values.append(kwargs.get("value"))
        self.callbacks.append(kwargs["on_delivery"])

    def report(self, index: int, error: KafkaError | None) -> None:
        """Call the delivery callback of the index-th record as librdkafka would: with a message that has
        the record's key and value but no headers (a delivery report carries none)."""
        self.callbacks[index](error, Message(topic="dlq", partition=0, offset=7, key=b"app-1",
                                             value=self.values[index]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


BIG = OutboundRecord("dlq", key=b"app-1", value=b"v" * 20_000, headers=[("dlq.reason", b"invalid_json")],
                     reducible=True)
SMALL = OutboundRecord("dlq", key=b"app-1", value=b"", headers=[("dlq.reason", b"invalid_json")],
                       reducible=True)


def _asking(asked: list[OutboundRecord]) -> Callable[[OutboundRecord], OutboundRecord]:
    """A `too_large` that notes what it was asked about and replaces it with SMALL."""

    def too_large(record: OutboundRecord) -> OutboundRecord:
        asked.append(record)
        return SMALL

    return too_large


class TestARecordRefusedForItsSize:
    """A record refused as too large fails the same way on every retry: what `too_large` makes of it is
    published instead (a dead letter cut down), and the batch goes on."""

    def test_refused_by_librdkafka_at_produce_it_is_replaced_and_the_batch_goes_on(self) -> None:
        asked: list[OutboundRecord] = []
        publisher = Publisher({**NOWHERE, "message.max.bytes": 10_000}, too_large=_asking(asked))
        producer = _Recording(publisher)
        pending = publisher.publish_async([*_records(1), BIG, *_records(1)])

        assert asked == [BIG]
        assert producer.values == [b"{}", SMALL.value, b"{}"] and pending.failure() is None
        assert not pending.finished()  # waiting for three acknowledgements

    def test_refused_by_librdkafka_with_nothing_to_replace_it_the_batch_fails(self) -> None:
        publisher = Publisher({**NOWHERE, "message.max.bytes": 10_000}, too_large=lambda record: None)
        pending = publisher.publish_async([BIG])

        assert pending.finished() and isinstance(pending.failure(), DeliveryFailed)

    def test_refused_by_the_broker_it_is_produced_again_replaced_and_waited_for(self) -> None:
        asked: list[OutboundRecord] = []
        publisher = Publisher(NOWHERE, too_large=_asking(asked))
        producer = _Recording(publisher)
        pending = publisher.publish_async([BIG])
        producer.report(0, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

        assert not pending.finished()  # produces the replacement, then waits for it
        assert asked == [BIG], "asked about the record as published, headers included"
        assert producer.values == [BIG.value, SMALL.value] and pending.failure() is None
        producer.report(1, None)
        assert pending.finished() and pending.failure() is None

    def test_a_replacement_refused_in_turn_fails_the_batch(self) -> None:
        publisher = Publisher(NOWHERE, too_large=_asking([]))
        producer = _Recording(publisher)
        pending = publisher.publish_async([BIG])
        producer.report(0, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        assert not pending.finished()
        producer.report(1, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

        assert pending.finished() and isinstance(pending.failure(), DeliveryFailed)
        assert producer.values == [BIG.value, SMALL.value], "replaced once, not again and again"

    def test_refused_by_the_broker_with_nothing_to_replace_it_the_batch_fails(self) -> None:
        publisher = Publisher(NOWHERE)
        producer = _Recording(publisher)
        pending = publisher.publish_async([BIG])
        producer.report(0, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

        assert pending.finished() and isinstance(pending.failure(), DeliveryFailed)

    def test_refused_by_the_broker_and_too_large_makes_nothing_of_it_the_batch_fails(self) -> None:
        publisher = Publisher(NOWHERE, too_large=lambda record: None)
        producer = _Recording(publisher)
        pending = publisher.publish_async([BIG])
        producer.report(0, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

        assert pending.wait(1.0) and isinstance(pending.failure(), DeliveryFailed)
