"""The batch loop's commits against a fake consumer that models librdkafka's documented behaviour:

- an asynchronous commit's result arrives later, through the `on_commit` callback served by poll();
- librdkafka does not retry a failed commit (a commit sent with the generation of a group that has since
  rebalanced fails with ILLEGAL_GENERATION or REBALANCE_IN_PROGRESS, as seen on Apache Kafka).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaError, Message, TopicPartition

from streamer.runtime import batch_loop
from streamer.runtime.batch_loop import BatchHandler, BatchLoop

TOPIC = "apps"
Fake = TypeVar("Fake")


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


def _run_loop(make: Callable[[dict[str, Any]], Fake], done: Callable[[Fake], bool], handler: BatchHandler,
              max_batch: int, check_positions: bool = False) -> Fake:
    """Run a BatchLoop on the fake consumer `make` builds until `done(fake)` (or 10 s pass); returns the fake."""
    holder: list[Fake] = []

    def factory(config: dict[str, Any]) -> Any:
        holder.append(make(config))
        return holder[-1]  # a loop that replaces its consumer gets a new one

    loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], handler, max_batch=max_batch, max_wait_s=0.0,
                     check_positions=check_positions, consumer_factory=factory)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not (holder and done(holder[0])) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop(timeout_s=5)
    assert holder, "the loop never made its consumer"
    return holder[0]


def _run_until_committed(records: int, refuse: int, handler: BatchHandler) -> FakeConsumer:
    """Until the group has committed every record of the one partition."""
    return _run_loop(lambda config: FakeConsumer(config, records=records, refuse=refuse),
                     lambda fake: fake.broker_committed.get(0) == records, handler, max_batch=10)


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


class TricklingConsumer(FakeConsumer):
    """Records that arrive one at a time, `gap_s` apart (a light, steady load), and a count of commits sent."""

    def __init__(self, config: dict[str, Any], records: int, gap_s: float) -> None:
        super().__init__(config, records=records, refuse=0)
        self._started = time.monotonic()
        self._gap_s = gap_s
        self.commits_sent = 0

    def poll(self, timeout: float) -> FakeMessage | None:
        arrived = int((time.monotonic() - self._started) / self._gap_s) + 1
        if self._pending and self._pending[0].offset() < arrived:
            self._serve_callbacks()
            return self._pending.pop(0)
        self._serve_callbacks()
        time.sleep(min(timeout, self._gap_s / 4))
        return None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return []  # the next record has not arrived yet

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits_sent += 1
        super().commit(offsets, asynchronous)


class TestCommitCadence:
    def test_a_trickle_of_one_record_batches_is_committed_once_per_interval_not_once_per_batch(self) -> None:
        # Each commit is a request the broker writes to __consumer_offsets. A commit per batch at a light
        # load (every batch finishing with nothing else in flight) kept Apache Kafka's only node busy enough
        # to delay the applications themselves by ~1 s at 1,000/s.
        records, gap_s = 200, 0.0025  # 0.5 s of records; the loop commits at most every 0.1 s
        consumer = _run_loop(lambda config: TricklingConsumer(config, records=records, gap_s=gap_s),
                             lambda fake: fake.broker_committed.get(0) == records, lambda batch: None,
                             max_batch=10)
        assert consumer.broker_committed == {0: records}, "the loop went idle without committing everything"
        elapsed_intervals = records * gap_s / 0.1
        assert consumer.commits_sent <= elapsed_intervals + 3, (
            f"{consumer.commits_sent} commits for {records} one-record batches in {records * gap_s:.1f} s")


class RebalancingConsumer:
    """Partitions of `records` records each, and one rebalance from the `first` assignment to the `then` one
    once `rebalance_after` records were fetched. Modelled on librdkafka's documented behaviour:

    - a rebalance is an op on the consumer queue like a fetched record: the rebalance that arrives behind a
      record is served by the next poll()/consume() call, after that record was handed out;
    - an eager rebalance revokes the whole assignment and assigns the new one; fetching restarts at each
      partition's committed offset, and records fetched under the old assignment are never returned after it
      (librdkafka discards outdated fetches);
    - the group coordinator accepts a commit of any partition from a current member (Kafka's classic protocol
      checks the generation, not who owns the partition). Partitions that moved away are committed meanwhile
      by their new owner, which has done all their records;
    - a paused partition returns no records, and stays paused when a rebalance assigns it to the same member
      again (librdkafka keeps the application's pause: confluentinc/librdkafka#1849);
    - one poll() serves the rebalance and goes on to return a record of the new assignment;
    - seek() moves a partition's fetch position.
    """

    def __init__(self, config: dict[str, Any], records: int, first: set[int], then: set[int],
                 rebalance_after: int) -> None:
        self._on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] = config["on_commit"]
        self.records, self._first, self._then, self._rebalance_after = records, first, then, rebalance_after
        self._callbacks: tuple[Any, Any] = (None, None)
        self._queued: set[int] | None = None  # a new assignment waiting on the queue
        self._rebalanced = False
        self.assigned: set[int] = set()
        self.paused: set[int] = set()
        self._position: dict[int, int] = {}
        self.fetched = 0
        self.broker_committed: dict[int, int] = {}
        self.commits: list[tuple[set[int], dict[int, int]]] = []  # (assignment when sent, offsets)
        self._results: list[list[TopicPartition]] = []

    def subscribe(self, topics: Sequence[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._callbacks = (on_assign, on_revoke)
        self._queued = set(self._first)

    def poll(self, timeout: float) -> FakeMessage | None:
        if not self._rebalanced and self._queued is None and self.fetched >= self._rebalance_after:
            self._queued = set(self._then)  # arrives behind the record handed out now
            self._rebalanced = True
            return self._fetch(prefer=self.assigned - self._then)  # one of a partition that moves, if any
        self._serve()
        message = self._fetch()
        if message is None:
            time.sleep(min(timeout, 0.01))
        return message

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self._serve()
        taken: list[FakeMessage] = []
        while len(taken) < num_messages and (message := self._fetch()) is not None:
            taken.append(message)
        return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        self.commits.append((set(self.assigned), {tp.partition: tp.offset for tp in offsets}))
        for tp in offsets:
            self.broker_committed[tp.partition] = tp.offset
        self._results.append(offsets)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.assigned)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def seek(self, tp: TopicPartition) -> None:
        self._position[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def close(self) -> None:
        return None

    def _fetch(self, prefer: AbstractSet[int] = frozenset()) -> FakeMessage | None:
        for p in sorted(self.assigned, key=lambda q: (q not in prefer, self._position[q])):  # the least advanced
            if self._position[p] < self.records and p not in self.paused:
                self._position[p] += 1
                self.fetched += 1
                return FakeMessage(p, self._position[p] - 1)
        return None

    def _serve(self) -> None:
        on_assign, on_revoke = self._callbacks
        if self._queued is not None:
            new, self._queued = self._queued, None
            if self.assigned:
                on_revoke(self, self.assignment())
            for p in self.assigned - new:  # its new owner does all its records and commits them
                self.broker_committed[p] = self.records
            self.assigned = new
            self.paused &= new
            self._position = {p: self.broker_committed.get(p, 0) for p in new}
            on_assign(self, self.assignment())
        results, self._results = self._results, []
        for offsets in results:
            self._on_commit(None, offsets)


def _run_through_rebalance(
    first: set[int], then: set[int], handler: BatchHandler, records: int = 20
) -> RebalancingConsumer:
    """Until every partition of the `then` assignment is committed to its end."""
    return _run_loop(lambda config: RebalancingConsumer(config, records, first, then, rebalance_after=7),
                     lambda fake: all(fake.broker_committed.get(p) == records for p in then), handler, max_batch=3)


class TestRecordsFetchedBeforeARebalance:
    def test_a_partition_that_moved_away_is_never_committed_again(self) -> None:
        consumer = _run_through_rebalance({0, 1}, {1}, handler=lambda batch: None)
        foreign = [(owned, offsets) for owned, offsets in consumer.commits if set(offsets) - owned]
        assert foreign == [], f"commits of partitions this member did not own: {foreign}"
        assert consumer.broker_committed == {0: 20, 1: 20}, "the new owner's offset was overwritten"

    def test_a_partition_assigned_again_is_read_again_from_its_committed_offset_each_record_once(self) -> None:
        handed: list[int] = []

        def handler(batch: Sequence[Message]) -> None:
            handed.extend(m.offset() or 0 for m in batch)

        consumer = _run_through_rebalance({0}, {0}, handler=handler)
        assert handed == list(range(20)), "a record fetched before the rebalance was handed over after it"
        assert consumer.broker_committed == {0: 20}

    def test_partitions_paused_by_a_failed_batch_are_resumed_when_a_rebalance_assigns_them_again(self) -> None:
        failed: list[int] = []

        def handler(batch: Sequence[Message]) -> None:
            offsets = [m.offset() or 0 for m in batch]
            if 6 in offsets and not failed:  # the first try of this batch fails; the loop pauses and retries it
                failed.append(6)
                raise RuntimeError("the batch's work failed once")

        consumer = _run_through_rebalance({0}, {0}, handler=handler)
        assert failed == [6]
        assert consumer.broker_committed == {0: 20}, f"paused since the rebalance: {sorted(consumer.paused)}"


    def test_no_record_is_skipped_when_a_rebalance_lands_while_a_failed_batch_waits_for_its_retry(self) -> None:
        durable: list[int] = []
        failed: list[int] = []

        def handler(batch: Sequence[Message]) -> None:
            offsets = [m.offset() or 0 for m in batch]
            if 6 in offsets and not failed:  # fails once; the rebalance is served while the loop waits to retry
                failed.append(6)
                raise RuntimeError("the batch's work failed once")
            durable.extend(offsets)

        consumer = _run_through_rebalance({0}, {0}, handler=handler)
        assert consumer.broker_committed == {0: 20}
        missing = sorted(set(range(20)) - set(durable))
        assert missing == [], f"committed past records whose work never became durable: {missing}"


class LostLogConsumer(RebalancingConsumer):
    """Two partitions, no rebalance; `lose(p)` models a Tansu restarted empty under partition p: its high
    watermark drops to 0, its committed offset is gone and it has no records. Positions, watermarks, commits
    and seek() as librdkafka reports them (seek to OFFSET_BEGINNING: the log start)."""

    def __init__(self, config: dict[str, Any], records: int) -> None:
        super().__init__(config, records, first={0, 1}, then={0, 1}, rebalance_after=10**9)
        self.lost: set[int] = set()
        self.loss_seen = False  # the loop asked for positions after the loss

    def lose(self, partition: int) -> None:
        self.lost.add(partition)
        self.broker_committed.pop(partition, None)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        self.loss_seen = self.loss_seen or bool(self.lost)
        return [TopicPartition(TOPIC, tp.partition, self._position[tp.partition]) for tp in partitions]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, 0 if tp.partition in self.lost else self.records

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, tp.partition, self.broker_committed.get(tp.partition, OFFSET_INVALID))
                for tp in partitions]

    def _fetch(self, prefer: AbstractSet[int] = frozenset()) -> FakeMessage | None:
        for p in sorted(self.assigned, key=lambda q: self._position[q]):
            if p not in self.lost and self._position[p] < self.records and p not in self.paused:
                self._position[p] += 1
                self.fetched += 1
                return FakeMessage(p, self._position[p] - 1)
        return None


class FailsOnceTheLossIsSeen:
    """A batch's work still waiting when the broker's loss is noticed, and failed after that."""

    def __init__(self, consumer: LostLogConsumer) -> None:
        self._consumer = consumer

    def finished(self) -> bool:
        return self._consumer.loss_seen

    def wait(self, timeout_s: float) -> bool:
        if not self.finished():
            time.sleep(min(timeout_s, 0.01))
        return self.finished()

    def failure(self) -> Exception | None:
        return RuntimeError("its delivery failed") if self.finished() else None

    def succeeded(self) -> None:
        return None

    def again(self) -> None:
        return None


class TestAPartitionWhoseBrokerLostItsLog:
    def test_the_other_partitions_batches_dropped_with_it_are_fetched_again_not_skipped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(batch_loop, "CHECK_POSITIONS_S", 0.05)
        fakes: list[LostLogConsumer] = []
        durable: list[tuple[int, int]] = []
        failing: list[FailsOnceTheLossIsSeen] = []

        def make(config: dict[str, Any]) -> LostLogConsumer:
            fakes.append(LostLogConsumer(config, records=20))
            return fakes[0]

        def handler(batch: Sequence[Message]) -> FailsOnceTheLossIsSeen | None:
            if not failing and any(m.partition() == 1 and (m.offset() or 0) >= 6 for m in batch):
                failing.append(FailsOnceTheLossIsSeen(fakes[0]))
                fakes[0].lose(0)  # the broker under partition 0 restarts empty while this batch waits
                return failing[0]
            durable.extend((m.partition() or 0, m.offset() or 0) for m in batch)
            return None

        consumer = _run_loop(make, lambda fake: fake.broker_committed.get(1) == 20, handler, max_batch=3,
                             check_positions=True)

        assert failing and consumer.loss_seen
        missing = sorted(set(range(20)) - {offset for p, offset in durable if p == 1})
        assert consumer.broker_committed.get(1) == 20
        assert missing == [], f"partition 1 committed past records whose work never became durable: {missing}"


class TestABatchThatAlwaysFails:
    def test_is_handed_to_give_up_after_max_attempts_and_its_partition_moves_on(self) -> None:
        attempts: list[int] = []
        given_up: list[list[int]] = []

        def handler(batch: Sequence[Message]) -> None:
            offsets = [m.offset() or 0 for m in batch]
            if 13 in offsets:  # a record that fails whatever is tried
                attempts.append(13)
                raise RuntimeError("this batch never succeeds")

        def give_up(batch: Sequence[Message], error: Exception) -> None:
            given_up.append([m.offset() or 0 for m in batch])  # e.g. written one at a time, the rest dead-lettered

        holder: list[RebalancingConsumer] = []

        def factory(config: dict[str, Any]) -> Any:
            holder.append(RebalancingConsumer(config, 25, first={0}, then={0}, rebalance_after=10**9))
            return holder[0]

        loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], handler, max_batch=10, max_wait_s=0.0,
                         max_backoff_s=0.001, give_up=give_up, max_attempts=4, consumer_factory=factory)
        loop.start()
        try:
            deadline = time.monotonic() + 10
            while not (holder and holder[0].broker_committed.get(0) == 25) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            loop.stop(timeout_s=5)

        assert len(attempts) == 4, f"tried {len(attempts)} times before giving up, not max_attempts"
        assert len(given_up) == 1 and 13 in given_up[0]
        assert holder[0].broker_committed == {0: 25}, "the partition stayed stuck behind the batch"


class TransactionalTopicConsumer(FakeConsumer):
    """A partition written in transactions: after the last record comes a commit marker, which librdkafka never
    returns to a read_committed application but steps its position over (librdkafka's documented behaviour;
    seen on Apache Kafka 4.4: records at 0-4 and 6-10, markers at 5 and 11, position 12 once all are read)."""

    def __init__(self, config: dict[str, Any], records: int) -> None:
        super().__init__(config, records=records, refuse=0)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        read_all = not self._pending
        return [TopicPartition(TOPIC, tp.partition, self._records + 1 if read_all else OFFSET_INVALID)
                for tp in partitions]


class TestATransactionalInputTopic:
    def test_the_group_commits_past_the_last_commit_marker_once_idle(self) -> None:
        holder: list[TransactionalTopicConsumer] = []

        def factory(config: dict[str, Any]) -> Any:
            holder.append(TransactionalTopicConsumer(config, records=5))
            return holder[0]

        loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], lambda batch: None, max_batch=10, max_wait_s=0.0,
                         commit_positions=True, consumer_factory=factory)
        loop.start()
        try:
            deadline = time.monotonic() + 10
            while not (holder and holder[0].broker_committed.get(0) == 6) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            loop.stop(timeout_s=5)
        assert holder[0].broker_committed.get(0) == 6, "the group stays behind the marker: its lag never reads 0"


class TestStallEvidence:
    def test_a_turn_that_hangs_is_measured_and_shows_where_the_thread_waits(self) -> None:
        release = threading.Event()

        def handler_that_hangs(batch: Sequence[Message]) -> None:
            release.wait(10)

        holder: list[FakeConsumer] = []

        def factory(config: dict[str, Any]) -> Any:
            holder.append(FakeConsumer(config, records=5, refuse=0))
            return holder[0]

        loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], handler_that_hangs, max_batch=10, max_wait_s=0.0,
                         consumer_factory=factory)
        loop.start()
        try:
            time.sleep(0.5)
            assert loop.stalled_for() >= 0.4
            assert any("handler_that_hangs" in frame for frame in loop.where()), loop.where()
        finally:
            release.set()
            time.sleep(0.2)
            assert loop.stalled_for() < 0.4, "the loop turns again once the handler returns"
            loop.stop(timeout_s=5)


class StuckAfterRevoke(FakeConsumer):
    """Revoked after `revoke_after` records and never assigned again: what librdkafka did when the group
    coordinator unloaded the group while this member's SyncGroup was in flight (fresh17's make test)."""

    def __init__(self, config: dict[str, Any], records: int, revoke_after: int) -> None:
        super().__init__(config, records=records, refuse=0)
        self._revoke_after, self._handed, self._revoked = revoke_after, 0, False
        self._on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None

    def subscribe(self, topics: Sequence[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke

    def poll(self, timeout: float) -> FakeMessage | None:
        if self._revoked or self._handed >= self._revoke_after:
            if not self._revoked and self._on_revoke is not None:
                self._revoked = True
                self._on_revoke(self, [TopicPartition(TOPIC, 0)])
            self._serve_callbacks()
            time.sleep(min(timeout, 0.01))
            return None
        message = super().poll(timeout)
        self._handed += message is not None
        return message

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return []


class TestStuckOutOfTheGroup:
    def test_a_consumer_never_assigned_again_after_a_revoke_is_replaced_and_the_rest_is_read_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(batch_loop, "REJOIN_TIMEOUT_S", 0.3)
        records = 20
        committed: dict[int, int] = {}
        seen: list[int] = []
        consumers: list[FakeConsumer] = []

        def factory(config: dict[str, Any]) -> Any:
            if consumers:  # the replacement: assigned, and reads on from the committed offset
                consumer = FakeConsumer(config, records=records, refuse=0)
                consumer._pending = [m for m in consumer._pending if m.offset() >= committed.get(0, 0)]
            else:
                consumer = StuckAfterRevoke(config, records=records, revoke_after=5)
            consumer.broker_committed = committed
            consumers.append(consumer)
            return consumer

        def handler(batch: Sequence[Message]) -> None:
            seen.extend(m.offset() or 0 for m in batch)

        _run_loop(factory, lambda _: committed.get(0) == records, handler, max_batch=1)
        assert len(consumers) == 2, "the consumer stuck out of its group was not replaced"
        assert seen == list(range(records)), "a record lost or read twice across the replacement"
        assert committed == {0: records}
