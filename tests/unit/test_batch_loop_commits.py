"""The batch loop's commits against a fake consumer that models librdkafka's documented behaviour:

- an asynchronous commit's result arrives later, through the `on_commit` callback served by poll();
- librdkafka does not retry a failed commit (a commit sent with the generation of a group that has since
  rebalanced fails with ILLEGAL_GENERATION or REBALANCE_IN_PROGRESS, as seen on Apache Kafka).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, TopicPartition

from streamer.runtime.batch_loop import BatchHandler, BatchLoop

TOPIC = "apps"


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class FakeConsumer:
    """One partition of `records` records; the first `refuse` commits of the final offset fail (the last
    commit before the loop goes idle: nothing newer would supersede it)."""

    def __init__(self, config: dict[str, Any], records: int, refuse: int) -> None:
        self._on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] = config["on_commit"]
        self._pending = [FakeMessage(0, n) for n in range(records)]
        self._refuse = refuse
        self._records = records
        self._results: list[tuple[KafkaError | None, list[TopicPartition]]] = []
        self._on_assign: Callable[[Any, list[TopicPartition]], None] | None = None
        self.broker_committed: dict[int, int] = {}

    def subscribe(self, topics: Sequence[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._on_assign = on_assign

    def poll(self, timeout: float) -> FakeMessage | None:
        self._serve_callbacks()
        if self._pending:
            return self._pending.pop(0)
        time.sleep(min(timeout, 0.01))
        return None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        taken, self._pending = self._pending[:num_messages], self._pending[num_messages:]
        return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if self._refuse > 0 and any(tp.offset == self._records for tp in offsets):
            self._refuse -= 1
            error = KafkaError(KafkaError.ILLEGAL_GENERATION)
            self._results.append((error, offsets))
            if not asynchronous:
                raise RuntimeError(str(error))
            return
        for tp in offsets:
            self.broker_committed[tp.partition] = tp.offset
        self._results.append((None, offsets))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def close(self) -> None:
        return None

    def _serve_callbacks(self) -> None:
        if self._on_assign is not None:
            assign, self._on_assign = self._on_assign, None
            assign(self, [TopicPartition(TOPIC, 0)])
        results, self._results = self._results, []
        for error, offsets in results:
            self._on_commit(error, offsets)


def _run_until_committed(records: int, refuse: int, handler: BatchHandler) -> FakeConsumer:
    """Run a BatchLoop on a fake consumer until the group has committed every record (or 10 s pass)."""
    holder: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> Any:
        holder.append(FakeConsumer(config, records=records, refuse=refuse))
        return holder[0]

    loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], handler, max_batch=10, max_wait_s=0.0,
                     consumer_factory=factory)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not (holder and holder[0].broker_committed.get(0) == records) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop(timeout_s=5)
    assert holder, "the loop never made its consumer"
    return holder[0]


class TestCommits:
    def test_a_commit_the_broker_refused_is_sent_again_though_no_new_batch_comes(self) -> None:
        consumer = _run_until_committed(25, refuse=1, handler=lambda batch: None)
        committed = consumer.broker_committed.get(0)
        assert committed == 25, f"the group's committed offset stayed at {committed} after a refused commit"

    def test_each_batch_is_handed_over_once_when_commits_succeed(self) -> None:
        seen: list[int] = []

        def handler(batch: Sequence[Message]) -> None:
            seen.extend(m.offset() or 0 for m in batch)

        consumer = _run_until_committed(25, refuse=0, handler=handler)
        assert seen == list(range(25))
        assert consumer.broker_committed == {0: 25}
