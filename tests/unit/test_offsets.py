"""The batch loop's offset bookkeeping (streamer.runtime.offsets), one sentence per behaviour."""

from __future__ import annotations

from streamer.runtime.offsets import BatchSpan, OffsetBook, first_offsets

A0, A1, B0 = ("apps", 0), ("apps", 1), ("other", 0)


def _book(*owned: tuple[str, int]) -> OffsetBook:
    book = OffsetBook()
    book.assign(owned)
    return book


class TestBatchSpan:
    def test_a_span_holds_the_first_and_last_offset_of_each_partition_in_any_order(self) -> None:
        span = BatchSpan([(A0, 7), (A1, 3), (A0, 5), (A0, 9)])
        assert span.first == {A0: 5, A1: 3} and span.last == {A0: 9, A1: 3}

    def test_first_offsets_are_the_lowest_of_every_span_per_partition(self) -> None:
        assert first_offsets([BatchSpan([(A0, 8), (A1, 4)]), BatchSpan([(A0, 6)])]) == {A0: 6, A1: 4}


class TestOffsetBook:
    def test_a_durable_batch_moves_the_frontier_one_past_its_last_offset(self) -> None:
        book = _book(A0)
        assert book.mark_durable(BatchSpan([(A0, 0), (A0, 4)])) == {A0: 5}
        assert book.to_commit() == {A0: 5}

    def test_the_frontier_never_moves_back(self) -> None:
        book = _book(A0)
        book.mark_durable(BatchSpan([(A0, 9)]))
        assert book.mark_durable(BatchSpan([(A0, 2)])) == {}
        assert book.frontier(A0) == 10

    def test_a_batch_of_a_partition_not_owned_marks_nothing(self) -> None:
        book = _book(A0)
        assert book.mark_durable(BatchSpan([(A1, 3)])) == {}
        assert book.frontier(A1) is None and book.to_commit() == {}

    def test_a_revoke_hands_back_the_last_frontiers_and_leaves_nothing_to_commit_for_them(self) -> None:
        book = _book(A0, A1)
        book.mark_durable(BatchSpan([(A0, 1), (A1, 2)]))
        assert book.revoke([A0]) == {A0: 2}
        assert book.to_commit() == {A1: 3} and book.frontier(A0) is None
        assert book.mark_durable(BatchSpan([(A0, 5)])) == {}, "a revoked partition was marked"

    def test_a_partition_assigned_again_starts_without_a_frontier(self) -> None:
        book = _book(A0)
        book.mark_durable(BatchSpan([(A0, 4)]))
        book.revoke([A0])
        book.assign([A0])
        assert book.frontier(A0) is None

    def test_a_lost_log_forgets_the_frontier_but_keeps_the_partition(self) -> None:
        book = _book(A0)
        book.mark_durable(BatchSpan([(A0, 4)]))
        book.forget([A0])
        assert A0 in book.owned and book.to_commit() == {}

    def test_dropped_records_are_fetched_again_only_where_the_partition_is_still_owned(self) -> None:
        book = _book(A0, B0)
        assert book.fetch_again({A0: 3, A1: 7, B0: 0}) == {A0: 3, B0: 0}
