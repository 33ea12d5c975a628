"""The batch loop's offset bookkeeping, apart from librdkafka: what is owned, what is durable, what may be
committed, what a revoke or a failure drops and where to fetch again.

Pure code with no Kafka import; the batch loop turns its answers into commits and seeks. Offsets follow
Kafka's convention: a committed offset is the next record to read, so it passes a record only once that
record's work is durable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Partition = tuple[str, int]  # (topic, partition)


class BatchSpan:
    """The offsets a batch covers: per partition, its first and last offset (a batch may hold several)."""

    __slots__ = ("first", "last")

    def __init__(self, positions: Iterable[tuple[Partition, int]]) -> None:
        self.first: dict[Partition, int] = {}
        self.last: dict[Partition, int] = {}
        for partition, offset in positions:
            if offset < self.first.get(partition, offset + 1):
                self.first[partition] = offset
            if offset > self.last.get(partition, -1):
                self.last[partition] = offset


def first_offsets(spans: Iterable[BatchSpan]) -> dict[Partition, int]:
    """Per partition, the lowest offset of the spans: where fetching must start again to re-read them all."""
    lowest: dict[Partition, int] = {}
    for span in spans:
        for partition, offset in span.first.items():
            lowest[partition] = min(lowest.get(partition, offset), offset)
    return lowest


class OffsetBook:
    """The partitions a member owns and, for each, its commit frontier (one past its last durable record)."""

    def __init__(self) -> None:
        self.owned: set[Partition] = set()
        self._frontier: dict[Partition, int] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        self.owned |= set(partitions)

    def revoke(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """Give partitions up; returns their frontiers, the last commit they get from this member."""
        revoked = set(partitions)
        final = {p: o for p, o in self._frontier.items() if p in revoked}
        self.owned -= revoked
        for partition in revoked:
            self._frontier.pop(partition, None)
        return final

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drop the frontiers of partitions whose log the broker lost: they start over from its beginning."""
        for partition in partitions:
            self._frontier.pop(partition, None)

    def mark_durable(self, span: BatchSpan) -> dict[Partition, int]:
        """A batch's work is durable (it and every batch before it, in order); returns the frontiers moved.

        A partition no longer owned is skipped: its new owner commits it, from its own work."""
        moved = {}
        for partition, last in span.last.items():
            if partition in self.owned and last + 1 > self._frontier.get(partition, -1):
                self._frontier[partition] = moved[partition] = last + 1
        return moved

    def to_commit(self) -> dict[Partition, int]:
        """What this member may commit now: the frontiers of the partitions it owns."""
        return {p: o for p, o in self._frontier.items() if p in self.owned}

    def frontier(self, partition: Partition) -> int | None:
        return self._frontier.get(partition)

    def fetch_again(self, dropped: Mapping[Partition, int]) -> dict[Partition, int]:
        """Where to seek after dropping batches: the first dropped offset of each partition still owned (the
        position is past them, and the next durable batch would otherwise commit over them)."""
        return {p: o for p, o in sorted(dropped.items()) if p in self.owned}
