"""A consumer loop that hands micro-batches to a handler and commits offsets only after it returns.

The handler makes a batch's effects durable (decisions acknowledged by the broker, audit rows committed)
or raises. On a raise nothing is committed: the loop pauses its partitions, backs off and hands the same
batch over again, so a broker or database outage delays work but never skips it. A rebalance while a
batch is held drops the batch uncommitted; whoever owns the partitions next re-reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streamer.logging import get_logger

log = get_logger(__name__)

BatchHandler = Callable[[Sequence[Message]], None]
IDLE_POLL_S = 0.5


class BatchLoop:
    """One consumer, one thread. `start()` returns at once; `stop()` finishes the current batch first."""

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
    ) -> None:
        self.name = name
        self._config = consumer_config
        self._topics = list(topics)
        self._handler = handler
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._max_backoff_s = max_backoff_s
        self._on_failure = on_failure
        self._stopping = threading.Event()
        self._revoked = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._committed: dict[tuple[str, int], int] = {}
        self.assigned = threading.Event()
        self.crashed: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._thread.join(timeout_s)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stopping.is_set():
                batch = self._next_batch(consumer)
                if batch and self._handle(consumer, batch):
                    self._commit(consumer, batch)
        except BaseException as exc:  # surfaced to the app's supervisor, which stops the worker
            self.crashed = exc
            log.exception("batch_loop_crashed", loop=self.name)
            raise
        finally:
            self._close(consumer)

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        # Block briefly for the first record, then take what arrives within max_wait, up to max_batch.
        first = consumer.poll(IDLE_POLL_S)
        if first is None:
            return []
        rest = consumer.consume(self._max_batch - 1, self._max_wait_s) if self._max_batch > 1 else []
        return [m for m in (first, *rest) if self._usable(m)]

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer_error", loop=self.name, error=str(error))
        return False

    def _handle(self, consumer: Consumer, batch: list[Message]) -> bool:
        """True once the handler succeeded; False if the batch was dropped by a rebalance or a stop."""
        self._revoked.clear()
        backoff = 0.1
        paused: list[TopicPartition] = []
        try:
            while True:
                try:
                    self._handler(batch)
                    return True
                except Exception as exc:
                    log.warning("batch_failed", loop=self.name, error=repr(exc), retry_in_s=round(backoff, 2))
                    if self._on_failure:
                        self._on_failure(exc)
                if not paused:
                    paused = consumer.assignment()
                    consumer.pause(paused)
                if not self._wait_alive(consumer, backoff):
                    return False
                backoff = min(backoff * 2, self._max_backoff_s)
        finally:
            if paused and not self._revoked.is_set():
                consumer.resume(paused)

    def _wait_alive(self, consumer: Consumer, seconds: float) -> bool:
        """Sleep while serving the group protocol; False if a rebalance or a stop invalidates the batch."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping.is_set() or self._revoked.is_set():
                return False
            consumer.poll(min(0.2, max(0.0, deadline - time.monotonic())))  # paused: returns no records
        return not (self._stopping.is_set() or self._revoked.is_set())

    def _commit(self, consumer: Consumer, batch: Sequence[Message]) -> None:
        for m in batch:
            key = (m.topic() or "", m.partition() or 0)
            self._committed[key] = max(self._committed.get(key, -1), (m.offset() or 0) + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._committed.items()]
        consumer.commit(offsets=offsets, asynchronous=True)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("partitions_assigned", loop=self.name, partitions=[(p.topic, p.partition) for p in partitions])
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked.set()
        revoked = {(p.topic, p.partition) for p in partitions}
        done = [TopicPartition(t, p, o) for (t, p), o in self._committed.items() if (t, p) in revoked]
        if done:
            try:
                consumer.commit(offsets=done, asynchronous=False)
            except Exception as exc:  # already committed asynchronously; this is belt and braces
                log.warning("commit_on_revoke_failed", loop=self.name, error=repr(exc))
        for key in revoked:
            self._committed.pop(key, None)
        log.info("partitions_revoked", loop=self.name, partitions=sorted(revoked))

    def _close(self, consumer: Consumer) -> None:
        try:
            if self._committed:
                offsets = [TopicPartition(t, p, o) for (t, p), o in self._committed.items()]
                consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:
            log.warning("final_commit_failed", loop=self.name, error=repr(exc))
        consumer.close()
