"""A batch whose decisions the broker did not acknowledge is redone with the same decisions.

The model may have been promoted meanwhile; re-scoring then would give each application a second
`decision_id` (ids are per application and model), and the audit a second row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, TopicPartition

from streamer.core.policy import DecisionPolicy
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, load_entry
from streamer.runtime.batch_loop import BatchLoop
from streamer.runtime.publisher import Publisher
from streamer.stages.scoring import ScoringStage, ScoringTopics

REPO = Path(__file__).resolve().parents[2]
NOWHERE = {"bootstrap.servers": "127.0.0.1:9", "enable.idempotence": True, "log_level": 0}


class ApplicationRecord:
    def __init__(self, offset: int, value: bytes) -> None:
        self._offset, self._value = offset, value

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, 1_796_000_000_000 + self._offset

    def topic(self) -> str:
        return "loan-applications"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def headers(self) -> None:
        return None

    def key(self) -> None:
        return None

    def error(self) -> None:
        return None


class Delivered:
    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FailingFirstProducer:
    """Stands in for librdkafka's producer as documented: produce() queues a record and returns; the delivery
    report runs from poll(). The first `failures` records are reported failed with a retriable broker error
    (what message.timeout.ms leaves after NOT_ENOUGH_REPLICAS), which does not retire the producer;
    `on_failure` runs once they have been reported."""

    def __init__(self, failures: int, on_failure: Callable[[], None]) -> None:
        self.produced: list[tuple[str, bytes | None, bytes | None]] = []
        self._queued: list[tuple[Callable[[KafkaError | None, Any], None], str]] = []
        self._failures = failures
        self._on_failure = on_failure

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                headers: Any = None, on_delivery: Any = None) -> None:
        self.produced.append((topic, key, value))
        self._queued.append((on_delivery, topic))

    def poll(self, timeout: float) -> int:
        queued, self._queued = self._queued, []
        failed = False
        for on_delivery, topic in queued:
            if self._failures > 0:
                self._failures -= 1
                failed = True
                on_delivery(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), Delivered(topic, -1))
            else:
                on_delivery(None, Delivered(topic, len(self.produced)))
        if failed and self._failures == 0:
            self._on_failure()
        return len(queued)


class OneBatchConsumer:
    """librdkafka's consumer reduced to what one assigned partition of `records` needs: the assignment is
    served by the first poll(); records come from poll()/consume(); commits are recorded as the broker's."""

    def __init__(self, config: dict[str, Any], records: list[ApplicationRecord]) -> None:
        self._on_commit = config["on_commit"]
        self._records = list(records)
        self._on_assign: Any = None
        self.broker_committed: dict[int, int] = {}

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._on_assign = on_assign

    def poll(self, timeout: float) -> ApplicationRecord | None:
        if self._on_assign is not None:
            assign, self._on_assign = self._on_assign, None
            assign(self, self.assignment())
        if self._records:
            return self._records.pop(0)
        time.sleep(min(timeout, 0.01))
        return None

    def consume(self, num_messages: int, timeout: float) -> list[ApplicationRecord]:
        taken, self._records = self._records[:num_messages], self._records[num_messages:]
        return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.broker_committed.update({tp.partition: tp.offset for tp in offsets})
        self._on_commit(None, offsets)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("loan-applications", 0)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        return None

    def resume(self, partitions: list[TopicPartition]) -> None:
        return None

    def close(self) -> None:
        return None


def test_a_batch_redone_after_a_promotion_publishes_the_decisions_it_made_byte_for_byte() -> None:
    serving = load_entry(champion(REPO / "onnx_models"))
    slot = ModelSlot(serving)
    promoted = OnnxScorer(serving._session, serving.ref.model_copy(update={"version": "promoted"}), serving.inputs)

    def promote() -> None:
        slot.current = promoted  # the registry's new champion lands while the batch waits for its retry

    factory = ApplicationFactory(seed=11)
    records = [ApplicationRecord(n, orjson.dumps(factory.valid())) for n in range(5)]
    publisher = Publisher(NOWHERE)
    producer = FailingFirstProducer(failures=5, on_failure=promote)
    publisher._producer = producer  # type: ignore[assignment]
    stage = ScoringStage(slot, DecisionPolicy(), publisher, ScoringTopics("loan-decisions", "dlq"), 64_000,
                         "urn:streamer:test")
    consumers: list[OneBatchConsumer] = []

    def consumer(config: dict[str, Any]) -> Any:
        consumers.append(OneBatchConsumer(config, records))
        return consumers[0]

    loop = BatchLoop("scorer", {}, ["loan-applications"], stage, max_batch=5, max_wait_s=0.0,
                     consumer_factory=consumer)
    loop.start()
    deadline = time.monotonic() + 10
    while not (consumers and consumers[0].broker_committed.get(0) == 5) and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop(timeout_s=5)

    assert consumers and consumers[0].broker_committed.get(0) == 5, "the batch was never committed"
    assert slot.current is promoted
    first_try, second_try = producer.produced[:5], producer.produced[5:]
    assert second_try == first_try, "the redo published other decisions than the first try"
    assert {orjson.loads(v or b"{}")["model"]["version"] for _, _, v in second_try} == {serving.ref.version}
