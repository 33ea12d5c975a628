"""A batch handed to a producer that is then replaced is reported failed, so it is redone, never skipped.

No broker is needed: nothing listens on the address, so no record is ever acknowledged.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

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
