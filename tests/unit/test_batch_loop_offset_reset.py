"""A loop that never skips (`on_out_of_range`, for a consumer with auto.offset.reset=error) against a fake consumer
that models librdkafka's documented behaviour for `error` (CONFIGURATION.md, auto.offset.reset; the code path is
rd_kafka_offset_reset in src/rdkafka_offset.c):

- a partition with no committed offset, and one whose committed offset is outside the log, both get one consumer
  error _AUTO_OFFSET_RESET (its offset: OFFSET_INVALID for none, else the offset that was out of range), and the
  partition stops fetching; seek() on it then fails (confluentinc/librdkafka#2961);
- offsets given to assign() from on_assign are where the partitions start (OFFSET_INVALID: the committed
  offset; OFFSET_BEGINNING: the log start); when on_assign does not call assign(), the client assigns the
  partitions as they came (confluent-kafka-python's rebalance callback).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaError, KafkaException, Message, TopicPartition

from streamer.runtime.batch_loop import BatchLoop
from tests.unit.test_batch_loop_commits import TOPIC, FakeMessage


class ResetError(FakeMessage):
    def __init__(self, partition: int, offset: int) -> None:
        super().__init__(partition, offset)

    def error(self) -> KafkaError:  # type: ignore[override]
        return KafkaError(KafkaError._AUTO_OFFSET_RESET, "fetch failed due to requested offset not available")


class ResetErrorConsumer:
    """Partitions with a log `start` and `end` each, some with a committed offset; auto.offset.reset=error."""

    def __init__(self, config: dict[str, Any], logs: dict[int, tuple[int, int]], stored: dict[int, int]) -> None:
        self._on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] = config["on_commit"]
        self.logs = logs
        self.broker_committed = dict(stored)
        self._on_assign: Any = None
        self._assigned_by_app: list[TopicPartition] | None = None
        self._position: dict[int, int] = {}
        self.stopped: set[int] = set()
        self._queue: list[FakeMessage] = []
        self._results: list[list[TopicPartition]] = []
        self.committed_asked = 0

    def subscribe(self, topics: Sequence[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._on_assign = on_assign

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        self.committed_asked += 1
        return [TopicPartition(TOPIC, tp.partition, self.broker_committed.get(tp.partition, OFFSET_INVALID))
                for tp in partitions]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned_by_app = list(partitions)

    def seek(self, tp: TopicPartition) -> None:
        if tp.partition in self.stopped:
            raise KafkaException(KafkaError(KafkaError._STATE))
        self._position[tp.partition] = tp.offset

    def poll(self, timeout: float) -> FakeMessage | None:
        self._serve()
        if self._queue:
            return self._queue.pop(0)
        time.sleep(min(timeout, 0.01))
        return None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self._serve()
        taken, self._queue = self._queue[:num_messages], self._queue[num_messages:]
        return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        for tp in offsets:
            self.broker_committed[tp.partition] = tp.offset
        self._results.append(offsets)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.logs)]

    def close(self) -> None:
        return None

    def _serve(self) -> None:
        if self._on_assign is not None:
            on_assign, self._on_assign = self._on_assign, None
            given = [TopicPartition(TOPIC, p) for p in sorted(self.logs)]
            on_assign(self, given)
            for tp in self._assigned_by_app if self._assigned_by_app is not None else given:
                self._start(tp.partition, tp.offset)
        results, self._results = self._results, []
        for offsets in results:
            self._on_commit(None, offsets)

    def _start(self, partition: int, offset: int) -> None:
        start, end = self.logs[partition]
        if offset == OFFSET_BEGINNING:
            offset = start
        elif offset == OFFSET_INVALID:
            offset = self.broker_committed.get(partition, OFFSET_INVALID)
        if not start <= offset <= end:
            self.stopped.add(partition)
            self._queue.append(ResetError(partition, offset))
            return
        self._queue.extend(FakeMessage(partition, n) for n in range(offset, end))


def _run(logs: dict[int, tuple[int, int]], stored: dict[int, int], out_of_range: list[tuple[str, int]] | None,
         handed: list[tuple[int, int]], done: Callable[[ResetErrorConsumer], bool],
         resume_from: Callable[[list[tuple[str, int]]], dict[tuple[str, int], int]] | None = None,
         ) -> ResetErrorConsumer:
    fakes: list[ResetErrorConsumer] = []

    def factory(config: dict[str, Any]) -> Any:
        fakes.append(ResetErrorConsumer(config, logs, stored))
        return fakes[0]

    def handler(batch: Sequence[Message]) -> None:
        handed.extend((m.partition() or 0, m.offset() or 0) for m in batch)

    def report(topic: str, partition: int) -> None:
        assert out_of_range is not None
        out_of_range.append((topic, partition))

    loop = BatchLoop("audit", {"group.id": "g"}, [TOPIC], handler, max_batch=4, max_wait_s=0.0,
                     on_out_of_range=report if out_of_range is not None else None, resume_from=resume_from,
                     consumer_factory=factory)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not (fakes and done(fakes[0])) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.is_alive(), f"the loop died: {loop.crashed!r}"
    finally:
        loop.stop(timeout_s=5)
    assert fakes, "the loop never made its consumer"
    return fakes[0]


class TestALoopThatNeverSkips:
    def test_partitions_without_a_committed_offset_start_at_the_log_start(self) -> None:
        handed: list[tuple[int, int]] = []
        consumer = _run({0: (2, 10), 1: (0, 10)}, {1: 6}, [], handed,
                        lambda fake: fake.broker_committed == {0: 10, 1: 10})
        assert consumer.broker_committed == {0: 10, 1: 10}
        assert sorted(handed) == [(0, n) for n in range(2, 10)] + [(1, n) for n in range(6, 10)]
        assert consumer.stopped == set()

    def test_a_committed_offset_below_the_log_start_is_reported_and_nothing_past_it_is_committed(self) -> None:
        handed: list[tuple[int, int]] = []
        reported: list[tuple[str, int]] = []
        consumer = _run({0: (5, 10), 1: (0, 10)}, {0: 3, 1: 4}, reported, handed,
                        lambda fake: fake.broker_committed.get(1) == 10 and bool(reported))
        assert reported == [(TOPIC, 0)]
        assert consumer.broker_committed == {0: 3, 1: 10}, "the committed offset moved past the gap"
        assert [offset for p, offset in handed if p == 0] == []
        assert sorted(handed) == [(1, n) for n in range(4, 10)], "the other partition did not go on"

    def test_a_loop_without_the_option_leaves_the_start_to_librdkafka(self) -> None:
        handed: list[tuple[int, int]] = []
        consumer = _run({0: (0, 4)}, {0: 1}, None, handed, lambda fake: fake.broker_committed == {0: 4})
        assert consumer.committed_asked == 0
        assert handed == [(0, 1), (0, 2), (0, 3)]


class TestALoopThatResumesFromOffsetsKeptWithItsOutput:
    """`resume_from`: the audit's offsets stored in Postgres with its rows."""

    def test_stored_offsets_win_over_the_committed_ones_ahead_or_behind_and_the_others_start_as_before(self) -> None:
        handed: list[tuple[int, int]] = []
        asked: list[list[tuple[str, int]]] = []

        def stored(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
            asked.append(partitions)
            return {(TOPIC, 0): 7, (TOPIC, 1): 2}

        consumer = _run({0: (0, 10), 1: (0, 10), 2: (0, 10)}, {0: 3, 1: 5, 2: 8}, [], handed,
                        lambda fake: fake.broker_committed == {0: 10, 1: 10, 2: 10}, resume_from=stored)
        assert asked == [[(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)]]
        assert sorted(handed) == ([(0, n) for n in range(7, 10)] + [(1, n) for n in range(2, 10)]
                                  + [(2, n) for n in range(8, 10)])
        assert consumer.stopped == set()

    def test_when_the_stored_offsets_are_unavailable_the_committed_ones_serve(self) -> None:
        handed: list[tuple[int, int]] = []

        def unavailable(partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
            raise ConnectionError("the database is down")

        _run({0: (0, 10), 1: (0, 10)}, {0: 3}, [], handed,
             lambda fake: fake.broker_committed == {0: 10, 1: 10}, resume_from=unavailable)
        assert sorted(handed) == [(0, n) for n in range(3, 10)] + [(1, n) for n in range(0, 10)]
