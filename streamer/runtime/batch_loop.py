"""A consumer loop that hands micro-batches to a handler and commits offsets only after their work is durable.

A handler either finishes the batch's work before it returns (returns None: e.g. the audit transaction
committed) or starts it and returns a `Pending` (the scoring stage: decisions handed to the producer,
acknowledgements on their way). Up to `max_in_flight` batches are pending at once, so the broker's
acknowledgement of one batch overlaps the scoring of the next; offsets advance only over the oldest
batches that are durable, in order.

When a batch fails (its handler raised, or a record was not acknowledged) nothing past it is committed:
the loop lets the other batches in flight finish, pauses its partitions, and hands every failed batch
over again, in order, with back-off, until it is durable. A broker or database outage delays work but
never skips it. A rebalance waits for the batches in flight, commits the durable ones and drops the
rest uncommitted; whoever owns the partitions next re-reads them.

A loop given `on_out_of_range` (its consumer has auto.offset.reset=error) never skips records the broker
no longer has either: a partition whose committed offset is out of range stops, with an error, and nothing
past the gap is committed. Partitions without a committed offset start at the log start. Such a loop may
also be given `resume_from`: offsets kept with the work's output (the audit's, in Postgres), which take
precedence over the group's committed ones.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from streamer.logging import get_logger
from streamer.runtime.membership import GroupState, Membership
from streamer.runtime.offsets import BatchSpan, OffsetBook, first_offsets

log = get_logger(__name__)

IDLE_POLL_S = 0.5
# Revoked for this long without a new assignment, the consumer is replaced (see BatchLoop._rejoin_stuck).
# A rebalance that waits for slow members can take longer (up to max.poll.interval.ms): the replacement
# then only joins again, which that rebalance takes in.
REJOIN_TIMEOUT_S = 60.0
BUSY_POLL_S = 0.002  # while batches are in flight: look for new records, then check acknowledgements
DRAIN_TIMEOUT_S = 60.0
COMMITTED_TIMEOUT_S = 10.0
COMMITTED_ATTEMPTS = 3
CHECK_POSITIONS_S = 5.0
STALL_S = 30.0


class Pending(Protocol):
    """Work a handler started for one batch."""

    def finished(self) -> bool:
        """True once the work is durable or has failed; may do I/O to find out."""

    def wait(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` for the work to finish; True if it did."""

    def failure(self) -> Exception | None:
        """Why the work failed, once finished; None if it is durable."""

    def succeeded(self) -> None:
        """Called once, after the batch's offsets are marked for commit (metrics, logs)."""

    def again(self) -> Pending | None:
        """After a failure: the same work started again, with the same output (the decisions the batch
        already made, whatever model serves now); None to hand the batch to the handler again."""


class HandlerRaised:
    """A Pending for a handler that raised: finished, and failed."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def finished(self) -> bool:
        return True

    def wait(self, timeout_s: float) -> bool:
        return True

    def failure(self) -> Exception | None:
        return self._error

    def succeeded(self) -> None:
        return None

    def again(self) -> Pending | None:
        return None  # nothing was started: the handler runs again


BatchHandler = Callable[[Sequence[Message]], Pending | None]
InFlight = tuple[list[Message], Pending | None]


def _span(batch: Sequence[Message]) -> BatchSpan:
    return BatchSpan(((m.topic() or "", m.partition() or 0), m.offset() or 0) for m in batch)


def _verdict(pending: Pending | None) -> Exception | None:
    """Why a batch's work is not durable, or None when it is; a batch still waiting counts as failed."""
    if pending is None:
        return None
    if not pending.finished():
        return TimeoutError(f"not durable after {DRAIN_TIMEOUT_S:.0f} s")
    return pending.failure()


class BatchLoop:
    """One consumer, one thread. `start()` returns at once; `stop()` finishes the batches in flight first."""

    def __init__(
        self,
        name: str,
        consumer_config: dict[str, Any],
        topics: Sequence[str],
        handler: BatchHandler,
        max_batch: int,
        max_wait_s: float,
        max_backoff_s: float = 10.0,
        on_failure: Callable[[Exception], None] | None = None,
        max_in_flight: int = 4,
        commit_interval_s: float = 0.1,
        busy_poll_s: float = BUSY_POLL_S,
        check_positions: bool = False,
        on_out_of_range: Callable[[str, int], None] | None = None,
        give_up: Callable[[list[Message], Exception], Pending | None] | None = None,
        max_attempts: int = 10,
        resume_from: Callable[[list[tuple[str, int]]], dict[tuple[str, int], int]] | None = None,
        commit_positions: bool = False,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        self.name = name
        self._config = consumer_config
        self._topics = list(topics)
        self._handler = handler
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._max_backoff_s = max_backoff_s
        self._on_failure = on_failure
        self._max_in_flight = max(1, max_in_flight)
        self._commit_interval_s = commit_interval_s
        self._busy_poll_s = busy_poll_s
        self._check_positions_enabled = check_positions  # Tansu only: see _check_positions
        self._give_up = give_up  # after max_attempts failures: the batch's records one at a time (see _redo)
        self._max_attempts = max(1, max_attempts)
        self._on_out_of_range = on_out_of_range  # for auto.offset.reset=error: see _start_unset_at_beginning
        self._resume_from = resume_from  # with on_out_of_range only: see _start_unset_at_beginning
        self._commit_positions = commit_positions  # a transactional input topic: see _advance_to_positions
        self._next_position_check = 0.0
        self._consumer_factory = consumer_factory  # tests pass a fake that models librdkafka
        self._last_commit = 0.0
        # Offsets marked since the last commit, or a commit the broker refused: committed within the interval.
        self._commit_due = False
        self._in_flight: deque[InFlight] = deque()
        self._stopping = threading.Event()
        self._revoked = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._book = OffsetBook()  # the assignment, as the rebalance callbacks left it, and what is durable
        self._paused: set[tuple[str, int]] = set()  # paused by _recover and not resumed yet
        self._rebalances = 0  # counts the callbacks, to notice one served inside consume()
        # Per partition: how often its fetching started over (revoked, or sought back to dropped records).
        self._restarts: dict[tuple[str, int], int] = {}
        # Incremental rebalancing (cooperative-sticky, or KIP-848's consumer protocol): a revoke takes only the
        # partitions that move; the others keep their positions and their work in flight.
        self._incremental = (consumer_config.get("partition.assignment.strategy") == "cooperative-sticky"
                             or consumer_config.get("group.protocol") == "consumer")
        self._progress: dict[tuple[str, int], tuple[int, float]] = {}  # last offset marked, and when
        self._acknowledged: dict[tuple[str, int], int] = {}  # commits the broker confirmed
        self._next_check = 0.0
        self._membership = Membership(GroupState.JOINING)  # set by the rebalance callbacks only
        self._last_turn = time.monotonic()  # when the loop last began a turn; see stalled_for
        self.crashed: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stalled_for(self) -> float:
        """Seconds since the loop began its current turn. A turn waits at most seconds when all is well; an
        outage can hold one longer (a transaction redone until the broker answers), and so can a hang."""
        return time.monotonic() - self._last_turn

    def where(self) -> list[str]:
        """The loop thread's Python stack, innermost last, as "file:line function" (names only, no values)."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        stack = []
        while frame is not None:
            stack.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            frame = frame.f_back
        return stack[::-1]

    @property
    def membership(self) -> Membership:
        """Where the consumer stands in its group: joining, assigned (possibly nothing), revoked, stopped."""
        return self._membership

    def _run(self) -> None:
        consumer = self._consumer_factory({**self._config, "on_commit": self._on_commit})
        try:
            self._subscribe(consumer)
            while not self._stopping.is_set():
                self._last_turn = time.monotonic()
                if self._rejoin_stuck():
                    consumer = self._new_consumer(consumer)
                    continue
                self._step(consumer)
            self._drain(consumer)
        except:  # not BaseException: confluent-kafka raises KafkaError, outside that hierarchy
            self.crashed = sys.exc_info()[1]  # the app's supervisor sees the thread gone and stops the worker
            log.exception("batch_loop_crashed", loop=self.name)
            raise
        finally:
            self._close(consumer)

    def _rejoin_stuck(self) -> bool:
        """Revoked and not assigned again for REJOIN_TIMEOUT_S. librdkafka's group state machine was seen
        to stay out of its group for good when the coordinator unloaded the group mid-SyncGroup (a broker
        fenced after a freeze: the member's join was lost, and it never joined again)."""
        membership = self._membership
        return membership.state is GroupState.REVOKED and time.monotonic() - membership.since > REJOIN_TIMEOUT_S

    def _new_consumer(self, stuck: Consumer) -> Consumer:
        """Replace a consumer stuck out of its group: it owns nothing (revoked), so nothing is lost."""
        log.warning("consumer_replaced", loop=self.name, reason="not assigned again after a revoke",
                    revoked_for_s=round(time.monotonic() - self._membership.since))
        try:
            stuck.close()
        except Exception as exc:  # its group state is what is broken; the new consumer joins afresh
            log.warning("stuck_consumer_close_failed", loop=self.name, error=repr(exc))
        self._membership = Membership(GroupState.JOINING)
        consumer = self._consumer_factory({**self._config, "on_commit": self._on_commit})
        BatchLoop._subscribe(self, consumer)  # the consumer only: a transactional loop keeps its producer
        return consumer

    def _subscribe(self, consumer: Consumer) -> None:
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _step(self, consumer: Consumer) -> None:
        """One turn of the loop: settle what finished, then hand over the next batch if there is room."""
        self._settle(consumer)
        self._commit_when_due(consumer)
        self._check_positions(consumer)
        self._commit_idle_positions(consumer)
        if len(self._in_flight) >= self._max_in_flight:
            pending = self._in_flight[0][1]
            if pending is not None:
                pending.wait(0.05)
            return
        batch = self._next_batch(consumer)
        if batch:
            self._submit(batch)

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        # Wait for a first record (briefly while batches are in flight), then take what arrives within
        # max_wait, up to max_batch.
        first = consumer.poll(self._poll_timeout())
        if first is None:
            return []
        rebalances = self._rebalances
        key = (first.topic() or "", first.partition() or 0)
        restarts = self._restarts.get(key, 0)
        rest = consumer.consume(self._max_batch - 1, self._max_wait_s) if self._max_batch > 1 else []
        if self._rebalances != rebalances:
            # A rebalance queued behind `first` was served inside consume(). If it revoked `first`'s partition,
            # `first` belongs to the old assignment: handled now it could be marked for a partition another
            # member owns, or ahead of the records a new assignment fetches again from the committed offset.
            # It is fetched again if the partition comes back. (librdkafka drops the revoked partitions' other
            # fetched records.) A partition an incremental rebalance left alone keeps `first`, unless the revoke
            # dropped work of it and sought it back: `first` is then fetched again too.
            kept = key in self._book.owned and self._restarts.get(key, 0) == restarts
            head = [first] if kept else []
            return [m for m in (*head, *rest)
                    if (m.topic() or "", m.partition() or 0) in self._book.owned and self._usable(m)]
        return [m for m in (first, *rest) if self._usable(m)]

    def _poll_timeout(self) -> float:
        if self._in_flight:
            return self._busy_poll_s
        if self._commit_due:  # wake when the marked offsets are due to be committed
            return min(IDLE_POLL_S, max(0.0, self._last_commit + self._commit_interval_s - time.monotonic()))
        return IDLE_POLL_S

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        out_of_range = error.code() == KafkaError._AUTO_OFFSET_RESET and (message.offset() or 0) >= 0
        if out_of_range and self._on_out_of_range is not None:
            # auto.offset.reset=error: librdkafka stopped the partition at this offset (its committed one), and
            # stays there; OFFSET_INVALID would mean no committed offset (_start_unset_at_beginning prevents it).
            topic, partition = message.topic() or "", message.partition() or 0
            log.error("offsets_out_of_range", loop=self.name, topic=topic, partition=partition,
                      offset=message.offset(), error=error.str())
            self._on_out_of_range(topic, partition)
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer_error", loop=self.name, error=str(error))
        return False

    def _submit(self, batch: list[Message]) -> None:
        try:
            pending = self._handler(batch)
        except Exception as exc:
            pending = HandlerRaised(exc)
        self._in_flight.append((batch, pending))

    def _settle(self, consumer: Consumer) -> None:
        """Commit the oldest batches in flight that are durable; recover from the first that failed."""
        durable: list[InFlight] = []
        while self._in_flight:
            pending = self._in_flight[0][1]
            if pending is not None and not pending.finished():
                break
            if pending is not None and pending.failure() is not None:
                self._finish(consumer, durable)
                self._recover(consumer)
                return
            durable.append(self._in_flight.popleft())
        self._finish(consumer, durable)

    def _finish(self, consumer: Consumer, durable: list[InFlight]) -> None:
        if not durable:
            return
        for batch, _ in durable:
            self._mark(batch)
        # Commit at most every commit_interval_s, busy or not: each commit is a request the broker writes to
        # __consumer_offsets, and one per small batch at a light load kept a single Apache Kafka node busy
        # enough to delay the applications themselves by ~1 s. What is left is committed once the interval
        # has passed (_commit_when_due), so an idle loop still has everything committed.
        self._commit_due = True
        self._commit_when_due(consumer)
        for _, pending in durable:
            if pending is not None:
                pending.succeeded()

    def _commit_when_due(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if self._commit_due and now - self._last_commit >= self._commit_interval_s:
            self._commit_due = False
            self._commit(consumer, asynchronous=True)
            self._last_commit = now

    def _recover(self, consumer: Consumer) -> None:
        """Redo every failed batch in flight, in order, until durable; then commit them all."""
        self._revoked.clear()
        backlog = list(self._in_flight)
        self._in_flight.clear()
        paused = consumer.assignment()
        consumer.pause(paused)
        self._paused |= {(tp.topic, tp.partition) for tp in paused}
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            for _, pending in backlog:  # let the others finish before anything is redone, serving the group
                while pending is not None and not pending.wait(0.2) and time.monotonic() < deadline:
                    self._poll_paused(consumer, 0.0)
            # Judge every batch before any is redone: a redo may replace the producer the others depend on.
            judged = [(batch, pending, _verdict(pending)) for batch, pending in backlog]
            for i, (batch, pending, error) in enumerate(judged):
                if error is None:
                    if pending is not None:
                        pending.succeeded()
                elif not self._redo(consumer, batch, pending, error):
                    # Dropped by a rebalance or a stop: nothing past the failure is committed. Partitions an
                    # incremental revoke left to this member fetch the dropped batches again.
                    self._rewind(consumer, first_offsets(_span(b) for b, _, _ in judged[i:]))
                    return
                self._mark(batch)
            self._commit(consumer, asynchronous=True)
        finally:
            # The partitions still owned go on; one revoked meanwhile is resumed by _on_assign if it comes back.
            kept = [tp for tp in paused if not self._revoked.is_set() or (tp.topic, tp.partition) in self._book.owned]
            consumer.resume(kept)
            self._paused -= {(tp.topic, tp.partition) for tp in kept}

    def _redo(self, consumer: Consumer, batch: list[Message], failed: Pending | None, error: Exception) -> bool:
        """Start the batch's work again until it is durable; False if a rebalance or a stop came first."""
        backoff = min(0.1, self._max_backoff_s)
        last: Exception | None = error
        pending = failed
        attempts = 1  # the first try failed
        while last is not None:
            log.warning("batch_failed", loop=self.name, error=repr(last), retry_in_s=round(backoff, 2))
            if self._on_failure:
                self._on_failure(last)
            if not self._wait_alive(consumer, backoff):
                return False
            backoff = min(backoff * 2, self._max_backoff_s)
            attempts += 1
            try:
                if self._give_up is not None and attempts > self._max_attempts:
                    # A record that fails whatever is tried may be the cause: the handler takes them one at a
                    # time and gives up those that still fail while the rest can be written.
                    started = self._give_up(batch, last)
                else:
                    started = pending.again() if pending is not None else None
                    if started is None:
                        started = self._handler(batch)
            except Exception as exc:
                last = exc
                continue  # the same attempt again after the back-off
            pending = started
            if pending is None:
                return True
            while not pending.wait(0.2):
                if not self._wait_alive(consumer, 0.0):
                    return False
            last = pending.failure()
            if last is None:
                pending.succeeded()
        return True

    def _wait_alive(self, consumer: Consumer, seconds: float) -> bool:
        """Sleep while serving the group protocol; False if a rebalance or a stop invalidates the batch."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            # At least one poll per call: it serves the group protocol (max.poll.interval.ms) however long
            # the batch's work waits.
            self._poll_paused(consumer, max(0.0, min(0.2, remaining)))
            if self._stopping.is_set() or self._revoked.is_set():
                return False
            if remaining <= 0:
                return True

    def _poll_paused(self, consumer: Consumer, timeout_s: float) -> None:
        """poll() with every partition paused: it returns no record, unless a rebalance it served assigned one
        (an assignment starts unpaused). That record is fetched again later, not dropped."""
        message = consumer.poll(timeout_s)
        if message is not None and message.error() is None:
            consumer.seek(TopicPartition(message.topic() or "", message.partition() or 0, message.offset() or 0))

    def _mark(self, batch: Sequence[Message]) -> None:
        self._mark_span(_span(batch))

    def _mark_span(self, span: BatchSpan) -> None:
        now = time.monotonic()
        for key, frontier in self._book.mark_durable(span).items():
            self._progress[key] = (frontier, now)

    def _commit_idle_positions(self, consumer: Consumer) -> None:
        """Idle, with everything handed out durable: commit up to the consumer's position where it is ahead.

        On a topic written in transactions (the decision topic under exactly_once) librdkafka moves a
        read_committed consumer's position past records it never returns: commit markers, aborted records.
        Frontiers built from the records handed out stop short of them, and the group would stay behind by
        at least the last marker of every partition: the audit's lag would never read 0.
        """
        now = time.monotonic()
        if not self._commit_positions or self._in_flight or self._paused or now < self._next_position_check:
            return
        self._next_position_check = now + 1.0
        owned = [TopicPartition(t, p) for (t, p) in sorted(self._book.owned)]
        if not owned:
            return
        moved = False
        for tp in consumer.position(owned):
            key = (tp.topic, tp.partition)
            frontier = self._book.frontier(key)
            if tp.error is None and tp.offset > 0 and (frontier is None or tp.offset > frontier):
                moved |= bool(self._book.mark_durable(BatchSpan([(key, tp.offset - 1)])))
        if moved:
            self._commit(consumer, asynchronous=True)
            self._last_commit = now

    def _check_positions(self, consumer: Consumer) -> None:
        """Tansu only: every few seconds, look for a broker that lost its log, and for a stuck fetcher.

        On Apache Kafka neither check runs, and the loop never seeks on its own: Kafka keeps its log, and a
        position out of range is librdkafka's to handle (OFFSET_OUT_OF_RANGE, auto.offset.reset).

        Lost log (Tansu keeps it in memory): a
        position past the log end the broker reported, or committed offsets the broker acknowledged and
        no longer has. Those partitions start over from the beginning of the new log. Stuck fetcher:
        records waiting and no progress for STALL_S; seeking to the position restarts it.
        """
        now = time.monotonic()
        if not self._check_positions_enabled or now < self._next_check:
            return
        self._next_check = now + CHECK_POSITIONS_S
        assignment = consumer.assignment()
        if not assignment:
            return
        lost = self._lost_partitions(consumer, assignment)
        if lost:
            dropped = self._drain(consumer)  # whatever is in flight belongs to the old log
            self._book.forget(lost)
            for key in lost:
                dropped.pop(key, None)
                self._acknowledged.pop(key, None)
                self._progress.pop(key, None)
                consumer.seek(TopicPartition(key[0], key[1], OFFSET_BEGINNING))
            self._rewind(consumer, dropped)
            log.warning("broker_lost_log", loop=self.name, partitions=sorted(lost))
            return
        for tp in consumer.position(assignment):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            key = (tp.topic, tp.partition)
            if 0 <= tp.offset < high:
                last_offset, since = self._progress.setdefault(key, (-1, now))
                if now - since > STALL_S and last_offset <= tp.offset:
                    log.warning("partition_stalled", loop=self.name, partition=key, position=tp.offset, end=high)
                    self._progress[key] = (last_offset, now)
                    consumer.seek(tp)

    def _lost_partitions(self, consumer: Consumer, assignment: list[TopicPartition]) -> set[tuple[str, int]]:
        lost = set()
        for tp in consumer.position(assignment):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if 0 <= high < tp.offset:
                lost.add((tp.topic, tp.partition))
        acknowledged = {k: v for k, v in self._acknowledged.items() if v > 0}
        if acknowledged:
            try:
                stored = consumer.committed(
                    [TopicPartition(t, p) for (t, p) in acknowledged], timeout=5.0
                )
            except Exception as exc:  # the broker may be away right now; ask again next time
                log.warning("committed_offsets_unavailable", loop=self.name, error=repr(exc))
                return lost
            for tp in stored:
                key = (tp.topic, tp.partition)
                if tp.error is None and tp.offset < acknowledged[key]:
                    lost.add(key)
        return lost

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Remember what the broker acknowledged, to notice when a restarted broker no longer has it."""
        if error is not None:
            # librdkafka does not retry a failed commit, and an idle loop would commit nothing newer: a commit
            # sent just before a rebalance (ILLEGAL_GENERATION on Apache Kafka) would leave the group behind.
            log.warning("commit_failed", loop=self.name, error=str(error))
            self._commit_due = True  # sent again within the commit interval (_commit_when_due)
            return
        for tp in partitions:
            if tp.error is None and tp.offset >= 0:
                key = (tp.topic, tp.partition)
                self._acknowledged[key] = max(self._acknowledged.get(key, -1), tp.offset)

    def _commit(self, consumer: Consumer, asynchronous: bool) -> None:
        # Only partitions this member owns: the coordinator would take any, over their new owner's offsets.
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._book.to_commit().items()]
        if not offsets:
            return
        if asynchronous:
            consumer.commit(offsets=offsets, asynchronous=True)
        else:
            consumer.commit(offsets=offsets, asynchronous=False)

    def _drain(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Before a rebalance or a stop: wait for the batches in flight; mark those that are durable.

        Returns, per partition, the first offset of the batches dropped (failed, or not durable in time).
        """
        deadline = time.monotonic() + DRAIN_TIMEOUT_S  # for all of them together: a rebalance is waiting
        for _, pending in self._in_flight:
            if pending is not None:
                pending.wait(max(0.0, deadline - time.monotonic()))
        durable: list[InFlight] = []
        while self._in_flight:
            pending = self._in_flight[0][1]
            if pending is not None and (not pending.finished() or pending.failure() is not None):
                break  # this one and everything after it is re-read by the next owner
            durable.append(self._in_flight.popleft())
        dropped = first_offsets(_span(batch) for batch, _ in self._in_flight)
        self._in_flight.clear()
        for batch, _ in durable:
            self._mark(batch)
        for _, pending in durable:
            if pending is not None:
                pending.succeeded()
        return dropped

    def _rewind(self, consumer: Consumer, dropped: dict[tuple[str, int], int]) -> None:
        """Fetch dropped records again: the position is past them, and the next durable batch of their
        partition would otherwise commit over them. Partitions no longer owned are their next owner's."""
        again = [TopicPartition(t, p, o) for (t, p), o in self._book.fetch_again(dropped).items()]
        for tp in again:
            consumer.seek(tp)
            self._restarts[(tp.topic, tp.partition)] = self._restarts.get((tp.topic, tp.partition), 0) + 1
        if again:
            log.warning("records_fetched_again", loop=self.name,
                        partitions=[(tp.topic, tp.partition, tp.offset) for tp in again])

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self._book.assign((p.topic, p.partition) for p in partitions)
        # librdkafka keeps a partition paused when a rebalance gives it back to the same member; a recovery
        # cut short by the revoke did not resume it.
        again = [p for p in partitions if (p.topic, p.partition) in self._paused]
        if again:
            consumer.resume(again)
            self._paused -= {(p.topic, p.partition) for p in again}
        if self._on_out_of_range is not None and partitions:
            self._start_unset_at_beginning(consumer, partitions)
        log.info("partitions_assigned", loop=self.name, partitions=[(p.topic, p.partition) for p in partitions])
        # Even an empty assignment: the loop has joined, and more members than partitions is normal.
        self._membership = Membership(GroupState.ASSIGNED, len(self._book.owned))

    def _start_unset_at_beginning(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Assign the partitions at their stored offset (`resume_from`) if they have one; else those without a
        committed offset at the log start, the others at their committed one.

        With auto.offset.reset=error librdkafka stops a partition without a committed offset just as one whose
        offset is out of range, and a stopped partition cannot be seeked (confluentinc/librdkafka#2961). A
        committed-offset lookup that fails raises: the loop stops rather than guess.
        """
        unset, committed = set(), {}
        for tp in self._committed_offsets(consumer, partitions):
            committed[(tp.topic, tp.partition)] = tp.offset
            if tp.offset == OFFSET_INVALID:
                unset.add((tp.topic, tp.partition))
        stored = self._stored_offsets(partitions)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key in stored:
                tp.offset = stored[key]
            elif key in unset:
                tp.offset = OFFSET_BEGINNING
        if moved := sorted((*k, committed.get(k), o) for k, o in stored.items() if committed.get(k) != o):
            log.info("partitions_resumed_from_stored_offsets", loop=self.name, partitions=moved)
        if self._incremental:
            consumer.incremental_assign(partitions)  # the partitions added, with the offsets set above
        else:
            consumer.assign(partitions)  # eager rebalancing: the whole assignment, with the offsets set above
        if unset - stored.keys():
            log.info("partitions_started_at_beginning", loop=self.name, partitions=sorted(unset - stored.keys()))

    def _stored_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """The offsets `resume_from` has for the partitions. If it cannot say (the database is down), the group's
        committed offsets serve: an outage of the audit database must not stop the worker, and the committed
        offsets pass only work that is durable, unless the database was restored from an older copy since."""
        if self._resume_from is None:
            return {}
        try:
            return self._resume_from([(tp.topic, tp.partition) for tp in partitions])
        except Exception as exc:
            log.warning("stored_offsets_unavailable", loop=self.name, error=repr(exc))
            return {}

    def _committed_offsets(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets; a broker briefly away (a restart, a leader election) gets three tries."""
        for attempt in range(1, COMMITTED_ATTEMPTS + 1):
            try:
                found = consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
                errors = [tp.error for tp in found if tp.error is not None]
                if errors:
                    raise KafkaException(errors[0])
                return list(found)
            except KafkaException as exc:
                if attempt == COMMITTED_ATTEMPTS:
                    raise
                log.warning("committed_offsets_unavailable", loop=self.name, error=repr(exc), attempt=attempt)
        raise AssertionError("unreachable")

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        self._revoked.set()
        dropped = self._drain(consumer)
        revoked = {(p.topic, p.partition) for p in partitions}
        for key in revoked:
            self._restarts[key] = self._restarts.get(key, 0) + 1
        self._commit_revoked(consumer, [TopicPartition(t, p, o) for (t, p), o in self._book.revoke(revoked).items()])
        for key in revoked:
            self._progress.pop(key, None)
            self._acknowledged.pop(key, None)
        if self._incremental and self._book.owned:
            # The partitions kept: the drain marked their durable batches, and nothing else may come to commit them.
            self._rewind(consumer, dropped)
            self._commit(consumer, asynchronous=True)
        log.info("partitions_revoked", loop=self.name, partitions=sorted(revoked))
        # An incremental (cooperative) revoke may leave partitions held; an eager one revokes them all.
        owned = len(self._book.owned)
        self._membership = Membership(GroupState.ASSIGNED if owned else GroupState.REVOKED, owned)

    def _commit_revoked(self, consumer: Consumer, done: list[TopicPartition]) -> None:
        """The revoked partitions' last commit from this member."""
        if done:
            try:
                consumer.commit(offsets=done, asynchronous=False)
            except Exception as exc:  # the next owner re-reads these; duplicates, not loss
                log.warning("commit_on_revoke_failed", loop=self.name, error=repr(exc))

    def _close(self, consumer: Consumer) -> None:
        try:
            self._commit(consumer, asynchronous=False)
        except Exception as exc:
            log.warning("final_commit_failed", loop=self.name, error=repr(exc))
        consumer.close()  # serves a last revoke
        self._membership = Membership(GroupState.STOPPED)
