"""Consume -> decide -> produce in Kafka transactions: the scorer's exactly_once processing guarantee.

One transaction spans the batches of a commit interval. The handler's output records (decisions and
dead letters) are produced into it, and the consumed offsets are sent in it with the consumer's group
metadata, so the broker commits the outputs and the offsets together or neither; a read_committed consumer
sees each decision once. The group metadata fences a zombie (KIP-447): a member the group has moved past
cannot commit, so its transaction is aborted and nothing it produced becomes visible.

A transaction the broker aborts for a passing reason (a record not acknowledged, a timeout) is redone:
the same records, i.e. the decisions already made with the model that made them, in a new transaction
with the same offsets. One whose offsets the group refuses (this member was fenced by a rebalance) is
dropped; the partitions' owner re-reads them from the committed offsets, and partitions this member still
owns are fetched again from there. A producer left unusable (fenced, or its transaction timed out on the
broker) is replaced, and so is one whose call does not come back: librdkafka can block
send_offsets_to_transaction() past its timeout when the group coordinator is gone (librdkafka #5456 and
#5511, open; seen here when a 3-node cluster lost the coordinator's broker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streamer import metrics
from streamer.logging import get_logger
from streamer.runtime.batch_loop import IDLE_POLL_S, BatchLoop
from streamer.runtime.offsets import BatchSpan, first_offsets
from streamer.runtime.publisher import TOO_LARGE, OutboundRecord, TooLarge

log = get_logger(__name__)

TXN_TIMEOUT_S = 30.0  # for each transactional call; librdkafka retries inside it
HUNG_CALL_GRACE_S = 5.0  # past its own timeout, a transactional call is given up on and its producer replaced
MAX_BATCHES_PER_TXN = 50
# A producer whose transactions fail this many times in a row is replaced: a broker that lost its state (a
# Tansu restart) may refuse every transaction of a producer id it no longer knows, abortable or not.
RENEW_AFTER_FAILURES = 3
# The group has moved on without this member: its offsets are refused, and so would a redo's be.
GROUP_FENCED = frozenset({
    KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
})


@dataclass
class Decided:
    """What the handler made of one batch: the records to publish and what to do once they are committed."""

    records: list[OutboundRecord]
    on_success: Callable[[], None] | None = None


@dataclass
class _Transaction:
    spans: list[BatchSpan] = field(default_factory=list)
    records: list[OutboundRecord] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    refused: list[tuple[int, KafkaError]] = field(default_factory=list)  # index in records, too large
    complete: bool = True  # False once a record could not be produced: the transaction must not commit as is
    started: float = field(default_factory=time.monotonic)

    def offsets(self) -> dict[tuple[str, int], int]:
        """Per partition, the next offset to consume once this transaction commits."""
        ends: dict[tuple[str, int], int] = {}
        for span in self.spans:
            for partition, last in span.last.items():
                ends[partition] = max(ends.get(partition, 0), last + 1)
        return ends


class TransactionalProducer:
    """A transactional Producer and the delivery reports of the open transaction."""

    def __init__(self, config: dict[str, Any], factory: Callable[[dict[str, Any]], Producer] = Producer) -> None:
        self._config = config
        self._factory = factory
        self._hung: list[Producer] = []  # producers a call never came back from: kept, never used or destroyed
        self.producer = self._new()
        self._delivered_ends: dict[tuple[str, int], int] = {}

    def _new(self) -> Producer:
        self.producer = self._factory(self._config)
        self.call("init_transactions")  # also aborts what an earlier producer with this id left open
        return self.producer

    def call(self, name: str, *args: Any) -> None:
        """A transactional API call (init, send offsets, commit, abort) of the producer, given TXN_TIMEOUT_S.

        It runs on a thread of its own, and is given up on HUNG_CALL_GRACE_S after its timeout: the producer
        is then left to its call (librdkafka forbids a second transactional call meanwhile, and destroying it
        mid-call would crash) and the error raised is fatal, so the caller replaces it. A new producer with
        this transactional id fences the old one and aborts its transaction."""
        producer = self.producer
        method = getattr(producer, name)
        raised: list[BaseException] = []

        def run() -> None:
            try:
                method(*args, TXN_TIMEOUT_S)
            except BaseException as exc:  # handed to the caller's thread
                raised.append(exc)

        thread = threading.Thread(target=run, name=f"txn-{name}", daemon=True)
        thread.start()
        thread.join(TXN_TIMEOUT_S + HUNG_CALL_GRACE_S)
        if thread.is_alive():
            self._hung.append(producer)
            log.error("transactional_call_hung", call=name, seconds=TXN_TIMEOUT_S + HUNG_CALL_GRACE_S)
            raise KafkaException(KafkaError(
                KafkaError._TIMED_OUT, f"{name} did not return within its timeout; producer replaced", fatal=True))
        if raised:
            raise raised[0]

    def renew(self) -> None:
        log.warning("transactional_producer_renewed")
        self._new()

    def delivered_ends(self) -> dict[tuple[str, int], int]:
        """Per (topic, partition): one past the highest offset the broker acknowledged (Tansu's lag metric)."""
        return dict(self._delivered_ends)

    def produce(self, txn: _Transaction, start: int, too_large: TooLarge | None) -> None:
        """Produce txn.records[start:] into the open transaction."""
        # Decisions share one callback (a closure per record cost ~3 % of the scorer's samples); only a dead
        # letter (a reducible record) can be cut down if refused for its size, so only it needs its index.
        shared = self._on_delivery(txn, None)
        for index in range(start, len(txn.records)):
            record = txn.records[index]
            self._produce(record, self._on_delivery(txn, index) if record.reducible else shared, too_large)

    def _on_delivery(self, txn: _Transaction, index: int | None) -> Callable[[KafkaError | None, Message], None]:
        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is None:
                key = (message.topic() or "", message.partition() or 0)
                self._delivered_ends[key] = max(self._delivered_ends.get(key, 0), (message.offset() or 0) + 1)
            elif index is not None and error.code() in TOO_LARGE:
                txn.refused.append((index, error))  # replaced, cut down, when the transaction is redone
        return delivered

    def _produce(
        self, record: OutboundRecord, callback: Callable[[KafkaError | None, Message], None],
        too_large: TooLarge | None,
    ) -> None:
        while True:
            try:
                self.producer.produce(record.topic, value=record.value, key=record.key,
                                      headers=record.headers or None, on_delivery=callback)
                return
            except BufferError:  # the local queue is full: serve deliveries, then try again
                self.producer.poll(0.05)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                smaller = (too_large(record) if too_large is not None and isinstance(error, KafkaError)
                           and error.code() in TOO_LARGE else None)
                if smaller is None:
                    raise
                record = smaller  # refused by librdkafka before sending: the cut-down record instead


class TransactionalLoop(BatchLoop):
    """A BatchLoop whose batches' outputs and offsets are committed together, in Kafka transactions.

    The handler decides a batch and returns its records without producing them; this loop produces them
    into the open transaction, and commits it every `commit_interval_s` (and before a rebalance or a stop).
    """

    def __init__(
        self,
        name: str,
        consumer_config: dict[str, Any],
        producer_config: dict[str, Any],
        topics: Sequence[str],
        decide: Callable[[Sequence[Message]], Decided],
        max_batch: int,
        max_wait_s: float,
        commit_interval_s: float,
        too_large: TooLarge | None = None,
        max_backoff_s: float = 10.0,
        on_failure: Callable[[Exception], None] | None = None,
        check_positions: bool = False,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Producer] = Producer,
    ) -> None:
        super().__init__(
            name, consumer_config, topics, lambda batch: None, max_batch=max_batch, max_wait_s=max_wait_s,
            max_backoff_s=max_backoff_s, on_failure=on_failure, commit_interval_s=commit_interval_s,
            check_positions=check_positions, consumer_factory=consumer_factory,
        )
        self._decide = decide
        self._producer_config = producer_config
        self._producer_factory = producer_factory
        self._too_large = too_large
        self._txn: _Transaction | None = None
        self._output: TransactionalProducer | None = None

    def delivered_ends(self) -> dict[tuple[str, int], int]:
        return self._output.delivered_ends() if self._output is not None else {}

    def _subscribe(self, consumer: Consumer) -> None:
        self._output = TransactionalProducer(self._producer_config, self._producer_factory)
        super()._subscribe(consumer)

    def _poll_timeout(self) -> float:
        if self._txn is None:
            return IDLE_POLL_S
        return max(0.0, min(IDLE_POLL_S, self._txn.started + self._commit_interval_s - time.monotonic()))

    def _step(self, consumer: Consumer) -> None:
        self._check_positions(consumer)
        batch = self._next_batch(consumer)
        if batch:
            self._add(consumer, batch)
        txn = self._txn
        due = txn is not None and (len(txn.spans) >= MAX_BATCHES_PER_TXN
                                   or time.monotonic() - txn.started >= self._commit_interval_s)
        if txn is not None and due and not self._commit_transaction(consumer):
            # The position is past the dropped records: the next transaction would commit over them.
            self._rewind(consumer, first_offsets(txn.spans))

    def _add(self, consumer: Consumer, batch: list[Message]) -> None:
        output = self._producer()
        try:
            decided = self._decide(batch)
        except Exception as exc:  # nothing of this batch was produced: the open transaction goes first
            self._fail_batch(consumer, batch, exc)
            return
        if self._txn is None:
            self._begin()
            self._txn = _Transaction()
        txn = self._txn
        start = len(txn.records)
        txn.spans.append(BatchSpan(((m.topic() or "", m.partition() or 0), m.offset() or 0) for m in batch))
        txn.records.extend(decided.records)
        if decided.on_success is not None:
            txn.callbacks.append(decided.on_success)
        try:
            output.produce(txn, start, self._too_large)
            output.producer.poll(0)
        except KafkaException as exc:
            txn.complete = False  # the commit aborts it and redoes it whole
            log.warning("transaction_produce_failed", loop=self.name, error=repr(exc))

    def _begin(self) -> None:
        """Begin a transaction; a producer that cannot (a fatal error) is replaced first."""
        try:
            self._producer().producer.begin_transaction()
        except KafkaException as exc:
            log.warning("transaction_begin_failed", loop=self.name, error=repr(exc))
            self._producer().renew()
            self._producer().producer.begin_transaction()

    def _fail_batch(self, consumer: Consumer, batch: list[Message], error: Exception) -> None:
        """The handler raised: commit what came before, then fetch the batch again after a back-off."""
        log.warning("batch_failed", loop=self.name, error=repr(error))
        if self._on_failure:
            self._on_failure(error)
        dropped = self._drain(consumer)
        span = BatchSpan(((m.topic() or "", m.partition() or 0), m.offset() or 0) for m in batch)
        self._rewind(consumer, first_offsets([span, BatchSpan(dropped.items())]))
        self._wait_paused(consumer, self._max_backoff_s / 10)

    def _wait_paused(self, consumer: Consumer, seconds: float) -> None:
        assignment = consumer.assignment()
        consumer.pause(assignment)
        self._paused |= {(tp.topic, tp.partition) for tp in assignment}
        try:
            self._wait_alive(consumer, seconds)
        finally:
            # A partition revoked meanwhile stays paused in librdkafka; _on_assign resumes it if it comes back.
            kept = [tp for tp in assignment if (tp.topic, tp.partition) in self._book.owned]
            consumer.resume(kept)
            self._paused -= {(tp.topic, tp.partition) for tp in kept}

    def _producer(self) -> TransactionalProducer:
        if self._output is None:
            self._output = TransactionalProducer(self._producer_config, self._producer_factory)
        return self._output

    def _commit_transaction(self, consumer: Consumer) -> bool:
        """Commit the open transaction, redoing it after a passing failure; False if it was dropped."""
        txn = self._txn
        if txn is None:
            return True
        backoff = 0.1
        failures = 0
        while True:
            started = time.perf_counter()
            error = self._try_commit(consumer, txn)
            metrics.TRANSACTION_COMMIT_SECONDS.observe(time.perf_counter() - started)
            if error is None:
                self._txn = None
                for span in txn.spans:
                    self._mark_span(span)
                for callback in txn.callbacks:
                    callback()
                return True
            failures += 1
            self._abort(error, renew=failures % RENEW_AFTER_FAILURES == 0)
            if self._on_failure:
                self._on_failure(KafkaException(error))
            # Fenced by the group: its offsets would be refused again. Stopping: the partitions' next owner
            # re-reads them from the committed offsets.
            if error.code() in GROUP_FENCED or self._stopping.is_set():
                metrics.TRANSACTIONS_ABORTED.labels("dropped").inc()
                log.warning("transaction_dropped", loop=self.name, error=str(error))
                self._txn = None
                return False
            metrics.TRANSACTIONS_ABORTED.labels("redone").inc()
            log.warning("transaction_redone", loop=self.name, error=str(error), retry_in_s=round(backoff, 2))
            # Not polling meanwhile: a rebalance callback would commit this very transaction. An outage longer
            # than max.poll.interval.ms makes the member leave its group, and the redo is then dropped.
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
            self._replace_refused(txn)
            txn.complete = True
            try:
                self._begin()
                self._producer().produce(txn, 0, self._too_large)
            except KafkaException as exc:
                txn.complete = False
                log.warning("transaction_produce_failed", loop=self.name, error=repr(exc))

    def _try_commit(self, consumer: Consumer, txn: _Transaction) -> KafkaError | None:
        output = self._producer()
        if not txn.complete:
            return KafkaError(KafkaError._FAIL, "a record of the transaction was not produced", txn_requires_abort=True)
        offsets = [TopicPartition(t, p, o) for (t, p), o in txn.offsets().items()]
        try:
            output.call("send_offsets_to_transaction", offsets, consumer.consumer_group_metadata())
            while True:
                try:
                    output.call("commit_transaction")
                    return None
                except KafkaException as exc:
                    error = _error_of(exc)
                    if not error.retriable() or error.txn_requires_abort() or error.fatal():
                        raise
                    log.warning("transaction_commit_retried", loop=self.name, error=str(error))
        except KafkaException as exc:
            return _error_of(exc)

    def _abort(self, error: KafkaError, renew: bool = False) -> None:
        """Abort the transaction; a producer that cannot abort (fenced, fatal), or is told to renew, is replaced."""
        output = self._producer()
        if not renew and not error.fatal() and error.txn_requires_abort():
            try:
                output.call("abort_transaction")
                return
            except KafkaException as exc:
                log.warning("transaction_abort_failed", loop=self.name, error=repr(exc))
        output.renew()  # init_transactions fences and aborts whatever the old producer left open

    def _replace_refused(self, txn: _Transaction) -> None:
        """Records the broker refused for their size are produced again cut down (dead letters)."""
        refused, txn.refused = txn.refused, []
        for index, _ in refused:
            smaller = self._too_large(txn.records[index]) if self._too_large is not None else None
            if smaller is not None:
                txn.records[index] = smaller

    def _drain(self, consumer: Consumer) -> dict[tuple[str, int], int]:
        """Before a rebalance or a stop: commit the open transaction; if it was dropped, where its records start."""
        txn = self._txn
        if txn is None or self._commit_transaction(consumer):
            return {}
        return first_offsets(txn.spans)

    def _commit(self, consumer: Consumer, asynchronous: bool) -> None:
        return None  # offsets are committed inside the transactions

    def _commit_revoked(self, consumer: Consumer, done: list[TopicPartition]) -> None:
        return None  # the drain committed them in the transaction


def _error_of(exc: KafkaException) -> KafkaError:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))
