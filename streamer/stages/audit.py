"""The audit stage: a micro-batch of decision events -> audit rows, one Postgres transaction per batch.

Each batch is written by one of `writers` threads, each with its own connection, and the stage returns
at once with an `AuditWrite` (a batch_loop Pending). So Postgres writes the next batch while the loop
fetches and prepares the one after, and, with two writers, on two backends at once: one transaction at
a time left Postgres's second core idle and made the audit the pipeline's bottleneck (bench/README.md).
The batch loop still commits offsets only over batches whose transaction committed, in order.

A write that fails with AuditUnavailable (Postgres down) fails its batch; the batch loop holds its
offsets and redoes it, so audit lags behind decisions during an outage and catches up after it, one row
per decision_id. Records that can never become a row (not a Decision v1, or refused by Postgres as data)
go to the dead-letter topic instead of blocking the audit.

Exactly once: each transaction also stores, in `audit_consumer_offsets`, the consumer offsets known to be
safe (streamer/stages/audit_offsets.py says which), and on assignment the audit resumes from those
(BatchLoop's `resume_from`). When the loop goes idle, a write of the offsets alone catches Postgres up.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import NamedTuple

from confluent_kafka import Message

from streamer import metrics
from streamer.audit.sink import AuditSink, AuditUnavailable, DecisionEvent
from streamer.core.records import HEADER
from streamer.logging import get_logger
from streamer.runtime.publisher import OutboundRecord, Publisher
from streamer.stages.audit_offsets import Offsets, SafeOffsets
from streamer.stages.dead_letters import dead_letter, dead_letter_events

log = get_logger(__name__)


class AuditWrite:
    """One batch's transaction, running on a writer thread."""

    def __init__(self, future: Future[None], on_success: Callable[[], None]) -> None:
        self._future = future
        self._on_success = on_success

    def finished(self) -> bool:
        return self._future.done()

    def wait(self, timeout_s: float) -> bool:
        try:
            self._future.exception(timeout_s)
        except TimeoutError:
            return False
        return True

    def failure(self) -> Exception | None:
        error = self._future.exception(0)
        return error if error is None or isinstance(error, Exception) else RuntimeError(repr(error))

    def succeeded(self) -> None:
        self._on_success()  # the loop marked the batch: its offsets are safe to store

    def again(self) -> None:
        return None  # the stage writes the batch again; its rows are keyed by decision_id


class AuditStage:
    def __init__(
        self, sink_factory: Callable[[], AuditSink], publisher: Publisher, dead_letter_topic: str, writers: int = 2,
        *, event_source: str, read_records: bool = True,
    ) -> None:
        """`event_source`: the CloudEvents source of the dead letters (`Settings.event_source`). `read_records`:
        look for each decision's sealed record; False when no record key is configured, since reading a
        message's headers costs more than all else the stage does with it (bench/README.md)."""
        self._sink_factory = sink_factory
        self._sinks: list[AuditSink] = []
        self._local = threading.local()
        self._publisher = publisher
        self._publish_lock = threading.Lock()  # the Publisher is not thread-safe; dead letters here are rare
        self._dead_letter_topic = dead_letter_topic
        self._dead_letter_events = dead_letter_events(event_source)
        self._read_records = read_records
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._offsets = SafeOffsets()
        # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads at exit,
        # so one write hung on a frozen database would keep a stopped worker from exiting.
        self._writers = [
            threading.Thread(target=self._serve, name=f"audit-writer_{i}", daemon=True) for i in range(max(1, writers))
        ]
        for writer in self._writers:
            writer.start()

    def __call__(self, batch: Sequence[Message]) -> AuditWrite:
        return self._start(batch, alone=False)

    def give_up(self, batch: Sequence[Message], error: Exception) -> AuditWrite:
        """After the batch failed too often as a whole: write its records one at a time. A record that still
        fails alone while Postgres answers is dead-lettered (retries_exhausted), never retried forever; if
        Postgres does not answer, that is an outage and the whole batch fails again, to be retried."""
        return self._start(batch, alone=True)

    def _start(self, batch: Sequence[Message], alone: bool) -> AuditWrite:
        events: list[DecisionEvent] = []
        source: dict[int, Message] = {}
        unusable: list[OutboundRecord] = []
        for message in batch:
            value = message.value()
            if not value:
                unusable.append(self._dead(message, "invalid_decision", "the record has no value"))
                continue
            record = _record_header(message) if self._read_records else None
            event = DecisionEvent(message.topic() or "", message.partition() or 0, message.offset() or 0, value,
                                  record)
            source[id(event)] = message
            events.append(event)
        future: Future[None] = Future()
        ends: Offsets = {}
        for message in batch:
            key = (message.topic() or "", message.partition() or 0)
            ends[key] = max(ends.get(key, 0), (message.offset() or 0) + 1)
        self._offsets.started()
        self._queue.put(_Work(future, events, source, unusable, alone))
        return AuditWrite(future, lambda: self._marked(ends))

    def _marked(self, ends: Offsets) -> None:
        """On the loop's thread: the batch's offsets are safe; written alone if no batch is on its way."""
        if self._offsets.marked(ends):
            self._queue.put(_FLUSH)

    def close(self, timeout_s: float = 10.0) -> None:
        """After the batch loop stopped (it waited for its batches): stop the writers, close the connections."""
        for _ in self._writers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for writer in self._writers:
            writer.join(max(0.0, deadline - time.monotonic()))
        if not any(writer.is_alive() for writer in self._writers):
            for sink in self._sinks:
                sink.close()

    def _serve(self) -> None:
        while (work := self._queue.get()) is not None:
            if work is _FLUSH:
                self._flush()
            else:
                self._serve_batch(work)

    def _serve_batch(self, work: _Work) -> None:
        future, events, source, unusable, alone = work
        failure: Exception | None = None
        try:
            if future.set_running_or_notify_cancel():
                if alone:
                    self._write_alone(events, source, unusable)
                else:
                    self._write(events, source, unusable)
        except:  # noqa: E722 - even a bare KafkaError (outside BaseException): the batch fails and is redone
            raised = sys.exc_info()[1]
            failure = raised if isinstance(raised, Exception) else RuntimeError(repr(raised))
        finally:
            self._offsets.finished()  # before the loop can see the batch finished and mark it
        if not future.running():
            return
        if failure is not None:
            future.set_exception(failure)
        else:
            future.set_result(None)

    def _flush(self) -> None:
        """Store the safe offsets no transaction has stored yet; on failure the next batch carries them."""
        offsets = self._offsets.flushing()
        if not offsets:
            return
        try:
            self._sink().write([], offsets)
        except AuditUnavailable as exc:
            log.warning("audit_offsets_not_stored", error=str(exc))
            return
        self._offsets.stored(offsets)

    def _write(self, events: list[DecisionEvent], source: dict[int, Message], unusable: list[OutboundRecord]) -> None:
        offsets = self._offsets.unstored()
        result = self._sink().write(events, offsets)
        if result.offsets_stored:
            self._offsets.stored(offsets)
        unusable.extend(self._dead(source[id(e)], "audit_refused", why) for e, why in result.refused)
        self._publish_dead_letters(unusable)
        log.info("audit_batch_written", decisions=len(events), inserted=result.inserted, dead_letters=len(unusable))

    def _write_alone(
        self, events: list[DecisionEvent], source: dict[int, Message], unusable: list[OutboundRecord]
    ) -> None:
        sink, inserted = self._sink(), 0
        failed: list[tuple[DecisionEvent, AuditUnavailable]] = []
        for event in events:
            try:
                result = sink.write([event])
            except AuditUnavailable as unavailable:
                failed.append((event, unavailable))
                continue
            inserted += result.inserted
            unusable.extend(self._dead(source[id(e)], "audit_refused", why) for e, why in result.refused)
        if failed and not sink.answers():
            raise AuditUnavailable("Postgres does not answer: an outage, not the records")
        for event, error in failed:
            why = _error_class(error)
            unusable.append(self._dead(source[id(event)], "retries_exhausted", why))
            metrics.RECORDS_GIVEN_UP.labels("audit").inc()
            log.error("record_given_up", loop="audit", topic=event.topic, partition=event.partition,
                      offset=event.offset, error=why)
        self._publish_dead_letters(unusable)
        log.info("audit_batch_written", decisions=len(events), inserted=inserted, dead_letters=len(unusable),
                 one_at_a_time=True)

    def _publish_dead_letters(self, unusable: list[OutboundRecord]) -> None:
        if unusable:
            with self._publish_lock:
                self._publisher.publish(unusable)
            for record in unusable:
                reason = dict(record.headers or []).get("dlq.reason") or b"audit_refused"
                metrics.DEAD_LETTERS.labels(reason.decode() if isinstance(reason, bytes) else reason).inc()

    def _sink(self) -> AuditSink:
        """Each writer thread keeps its own connection (a psycopg connection serves one thread)."""
        sink: AuditSink | None = getattr(self._local, "sink", None)
        if sink is None:
            sink = self._local.sink = self._sink_factory()
            self._sinks.append(sink)
        return sink

    def _dead(self, message: Message, reason: str, detail: str) -> OutboundRecord:
        return dead_letter(message, self._dead_letter_topic, reason, detail, "audit", self._dead_letter_events)


class _Work(NamedTuple):
    future: Future[None]
    events: list[DecisionEvent]
    source: dict[int, Message]  # by id() of the event
    unusable: list[OutboundRecord]  # dead letters found before the write
    alone: bool  # one record per transaction (give_up)


_FLUSH = _Work(Future(), [], {}, [], False)  # a marker: store the safe offsets


def _record_header(message: Message) -> bytes | None:
    """The decision's sealed record (streamer/core/records.py), if it came with one."""
    headers = message.headers() or []  # a consumed record's are (name, bytes) pairs; the type also allows a dict
    for key, value in headers.items() if isinstance(headers, dict) else headers:
        if key == HEADER and isinstance(value, bytes):
            return value
    return None


def _error_class(error: AuditUnavailable) -> str:
    """What failed, in names only (Postgres's messages may quote the input): the class and SQLSTATE."""
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    return f"{type(cause).__name__} (SQLSTATE {sqlstate})" if cause is not None else type(error).__name__
