"""Which consumer offsets the audit may store in Postgres with its rows. Pure: no Kafka, no psycopg.

Only offsets the batch loop has marked are safe: it marks a batch (AuditWrite.succeeded) in offset order, and
only once every earlier batch of its partitions is durable (rows committed, dead letters published). A batch's
own offsets are not: with two writers, batch N+1 may commit before batch N, and an offset stored with N+1
would pass N's records, which a crash would then skip. So the stored offsets trail the rows by the batches in
flight and never lead them; whatever a resume reads again is in the ledger already, and skipped.
"""

from __future__ import annotations

import threading

Offsets = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read


class SafeOffsets:
    """Thread-safe: the loop's thread marks batches, the writer threads take and store offsets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._safe: Offsets = {}  # per partition, the highest offset the loop marked
        self._stored: Offsets = {}  # what a committed transaction stored of them
        self._busy = 0  # batches handed to the writers and not finished
        self._flush_due = False

    def started(self) -> None:
        """A batch was handed to a writer: its transaction will carry what is safe by then."""
        with self._lock:
            self._busy += 1

    def finished(self) -> None:
        """The batch's write ended, either way; call before the loop can see it finished."""
        with self._lock:
            self._busy -= 1

    def marked(self, ends: Offsets) -> bool:
        """The loop marked a batch that ends at `ends`. True when no batch is on its way to carry the offsets
        to Postgres: the caller then has them written alone (once; see flushing)."""
        with self._lock:
            for key, offset in ends.items():
                self._safe[key] = max(self._safe.get(key, 0), offset)
            flush = self._busy == 0 and not self._flush_due
            self._flush_due |= flush
            return flush

    def flushing(self) -> Offsets:
        """For the write of the offsets alone: what no transaction has stored yet."""
        with self._lock:
            self._flush_due = False
        return self.unstored()

    def unstored(self) -> Offsets:
        with self._lock:
            return {k: v for k, v in self._safe.items() if self._stored.get(k, -1) < v}

    def stored(self, offsets: Offsets) -> None:
        """A transaction that stored `offsets` committed."""
        with self._lock:
            for key, offset in offsets.items():
                self._stored[key] = max(self._stored.get(key, 0), offset)
