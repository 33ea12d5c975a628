"""The fault suite's accounting reads the input log back: a payload the publisher's producer wrote twice is two
records the worker must handle, and a delivery report that disagrees with the log is said out loud."""

from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_INVALID, Message

from tests.faults.harness import Ledger, Payload, Position, input_positions

VALID = Payload(b"app-1", b'{"valid": 1}', None, "app-1")
INVALID = Payload(b"bad-2", b"not json", "invalid_json")
OTHER = Payload(b"app-3", b'{"valid": 3}', None, "app-3")


def _log(*records: tuple[Position, Payload]) -> Ledger:
    inputs = [Message(topic="in", partition=p, offset=o, key=pl.key, value=pl.value) for (p, o), pl in records]
    return Ledger(decisions=[], dead_letters=[], inputs=inputs)


def test_a_payload_written_twice_is_two_records_to_handle_and_is_counted_as_a_copy() -> None:
    # The CI failure: the report names the second copy; the first one, at its own position, was dead-lettered too.
    ledger = _log(((1, 0), VALID), ((1, 1), INVALID), ((1, 2), OTHER), ((1, 3), INVALID))
    found = input_positions(ledger, [VALID, INVALID, OTHER], [(1, 0), (1, 3), (1, 2)])
    assert found.by_position == {(1, 0): 0, (1, 1): 1, (1, 2): 2, (1, 3): 1}
    assert (found.copies, found.misreported) == (1, 0)


def test_a_report_without_an_offset_is_placed_by_what_the_log_holds() -> None:
    # librdkafka reports a send the broker already had (DUPLICATE_SEQUENCE_NUMBER) with an invalid offset.
    ledger = _log(((0, 0), VALID), ((0, 1), INVALID))
    found = input_positions(ledger, [VALID, INVALID], [(0, 0), (0, OFFSET_INVALID)])
    assert found.by_position == {(0, 0): 0, (0, 1): 1}
    assert found.copies == 0


def test_a_report_naming_a_position_that_holds_another_payload_is_counted_and_the_log_decides() -> None:
    ledger = _log(((0, 0), OTHER), ((0, 1), VALID))
    found = input_positions(ledger, [VALID, OTHER], [(0, 0), (0, 1)])
    assert found.by_position == {(0, 0): 1, (0, 1): 0}
    assert found.misreported == 2


def test_payloads_published_twice_alike_keep_the_positions_their_reports_give() -> None:
    ledger = _log(((0, 0), VALID), ((0, 1), VALID))
    found = input_positions(ledger, [VALID, VALID], [(0, 0), (0, 1)])
    assert found.by_position == {(0, 0): 0, (0, 1): 1}
    assert (found.copies, found.misreported) == (0, 0)


def test_an_acknowledged_payload_missing_from_the_log_fails_the_accounting() -> None:
    ledger = _log(((0, 0), VALID))
    with pytest.raises(AssertionError, match="not in the input log"):
        input_positions(ledger, [VALID, INVALID], [(0, 0), (0, 1)])


def test_a_record_nobody_published_fails_the_accounting() -> None:
    stranger = Payload(b"x", b"y", None, "x")
    ledger = _log(((0, 0), VALID), ((0, 1), stranger))
    with pytest.raises(AssertionError, match="no payload explains"):
        input_positions(ledger, [VALID], [(0, 0)])


def test_a_broker_that_lost_its_log_leaves_the_reports_as_the_only_account() -> None:
    found = input_positions(_log(), [VALID, INVALID], [(0, 0), (0, 1)])
    assert found.by_position == {(0, 0): 0, (0, 1): 1}
