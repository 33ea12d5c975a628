"""Which consumer offsets the audit stage hands its sink to store with the rows: only those the batch loop has
marked (AuditWrite.succeeded), never a batch's own, so a stored offset never passes a batch that two writers
committed out of order. A fake sink stands for Postgres; the writers are the stage's real threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from streamer.audit.sink import DecisionEvent, WriteResult
from streamer.stages.audit import AuditStage
from streamer.stages.audit_offsets import SafeOffsets
from tests.unit.test_batch_loop_commits import TOPIC, FakeMessage


class _Record(FakeMessage):
    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> None:
        return None

    def key(self) -> None:
        return None


class _Sink:
    """Records what each write was given; a write of a batch starting at an offset in `held` waits for it."""

    def __init__(self) -> None:
        self.stored: list[dict[tuple[str, int], int]] = []
        self.held: dict[int, threading.Event] = {}
        self.lock = threading.Lock()

    def write(self, events: Sequence[DecisionEvent], offsets: Mapping[tuple[str, int], int] | None = None
              ) -> WriteResult:
        if events and (gate := self.held.get(events[0].offset)) is not None:
            assert gate.wait(10)
        with self.lock:
            self.stored.append(dict(offsets or {}))
        return WriteResult(len(events), [], offsets_stored=bool(offsets))

    def close(self) -> None:
        return None


class _Publisher:
    def publish(self, records: Sequence[Any]) -> None:
        raise AssertionError("no dead letters here")


@pytest.fixture
def sink() -> _Sink:
    return _Sink()


@pytest.fixture
def stage(sink: _Sink) -> Iterator[AuditStage]:
    audit = AuditStage(lambda: sink, _Publisher(), "dlq", writers=2, event_source="urn:streamer:test")  # type: ignore[arg-type, return-value]
    yield audit
    audit.close()


def _batch(partition: int, first: int, count: int) -> list[Any]:
    return [_Record(partition, n) for n in range(first, first + count)]


def _everything_stored(sink: _Sink) -> dict[tuple[str, int], int]:
    merged: dict[tuple[str, int], int] = {}
    for offsets in sink.stored:
        for key, offset in offsets.items():
            merged[key] = max(merged.get(key, 0), offset)
    return merged


class TestStoredOffsets:
    def test_a_batch_that_commits_before_an_earlier_one_does_not_store_its_offsets(
        self, stage: AuditStage, sink: _Sink
    ) -> None:
        sink.held[0] = threading.Event()
        first = stage(_batch(0, 0, 10))
        second = stage(_batch(0, 10, 10))
        assert second.wait(5) and second.failure() is None  # committed while the first still runs
        assert _everything_stored(sink) == {}, "an offset past the unfinished first batch was stored"
        sink.held[0].set()
        assert first.wait(5) and first.failure() is None
        assert _everything_stored(sink) == {}

    def test_offsets_the_loop_marked_go_with_the_next_write_or_alone_when_the_stage_is_idle(
        self, stage: AuditStage, sink: _Sink
    ) -> None:
        first = stage(_batch(0, 0, 10) + _batch(1, 0, 5))
        assert first.wait(5)
        first.succeeded()  # what the batch loop calls once everything before it is durable too
        _eventually(lambda: _everything_stored(sink) == {(TOPIC, 0): 10, (TOPIC, 1): 5})
        second = stage(_batch(0, 10, 10))
        assert second.wait(5)
        assert sink.stored[-1] == {}, "what was stored already is not sent again"
        second.succeeded()
        _eventually(lambda: _everything_stored(sink) == {(TOPIC, 0): 20, (TOPIC, 1): 5})

    def test_the_last_batch_marked_reaches_postgres_though_earlier_ones_were_marked_while_it_ran(
        self, stage: AuditStage, sink: _Sink
    ) -> None:
        sink.held[10] = threading.Event()
        first = stage(_batch(0, 0, 10))
        assert first.wait(5)
        second = stage(_batch(0, 10, 10))
        first.succeeded()  # while the second is on its way: it, or a write of the offsets alone, carries them
        sink.held[10].set()
        assert second.wait(5)
        second.succeeded()
        _eventually(lambda: _everything_stored(sink) == {(TOPIC, 0): 20})


def _eventually(check: Any, timeout_s: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if check():
            return
        done.wait(0.01)
    assert check()



class TestSafeOffsets:
    def test_only_marked_offsets_are_handed_out_and_each_only_until_it_is_stored(self) -> None:
        safe = SafeOffsets()
        safe.started()
        assert safe.unstored() == {}
        safe.finished()
        assert safe.marked({("t", 0): 10}) is True  # nothing on its way: written alone
        assert safe.marked({("t", 0): 5, ("t", 1): 3}) is False  # that write is due already
        assert safe.flushing() == {("t", 0): 10, ("t", 1): 3}
        safe.stored({("t", 0): 10})
        assert safe.unstored() == {("t", 1): 3}

    def test_a_mark_while_a_batch_is_on_its_way_leaves_the_offsets_to_it(self) -> None:
        safe = SafeOffsets()
        safe.started()
        assert safe.marked({("t", 0): 10}) is False
        assert safe.unstored() == {("t", 0): 10}
