"""A dead letter is the original record, untouched, with the reason in headers."""

from __future__ import annotations

import hashlib

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message, Producer

from streamer import metrics
from streamer.runtime.publisher import OutboundRecord
from streamer.stages.dead_letters import (
    MAX_RECORD_BYTES,
    dead_letter,
    dead_letter_events,
    record_bytes,
    reduced,
    refused_as_too_large,
)

EVENTS = dead_letter_events("urn:streamer:test")


def _message(
    value: bytes | None, key: bytes = b"app-1", headers: list[tuple[str, str | bytes | None]] | None = None
) -> Message:
    return Message(
        topic="loan-applications", partition=2, offset=41, key=key, value=value,
        headers=[("traceparent", b"00-abc")] if headers is None else headers,
        timestamp=(TIMESTAMP_CREATE_TIME, 1_795_305_600_000),
    )


def _producer_accepts(record: OutboundRecord) -> None:
    """librdkafka's default message.max.bytes (1,000,000) takes the record: produce() raises
    MSG_SIZE_TOO_LARGE otherwise. Nothing listens on the address; the record is purged unsent."""
    producer = Producer({"bootstrap.servers": "127.0.0.1:9", "log_level": 0})
    try:
        producer.produce(record.topic, key=record.key, value=record.value, headers=record.headers)
    finally:
        producer.purge()


class TestDeadLetter:
    def test_keeps_key_value_and_headers_and_adds_reason_and_source(self) -> None:
        record = dead_letter(_message(b'{"broken'), "dlq", "invalid_json", "EOF while parsing", "validation", EVENTS)
        headers = dict(record.headers or [])
        assert (record.topic, record.key, record.value) == ("dlq", b"app-1", b'{"broken')
        assert headers["traceparent"] == b"00-abc"
        assert headers["dlq.reason"] == b"invalid_json"
        assert headers["dlq.error"] == b"EOF while parsing"
        assert headers["dlq.stage"] == b"validation"
        assert (headers["dlq.source.topic"], headers["dlq.source.partition"], headers["dlq.source.offset"]) == (
            b"loan-applications", b"2", b"41"
        )
        assert headers["dlq.source.timestamp_ms"] == b"1795305600000"
        assert "dlq.truncated" not in headers

    def test_a_value_too_big_for_the_topic_is_cut_and_says_so(self) -> None:
        big = b"x" * 5000
        record = dead_letter(_message(big), "dlq", "too_large", "too big", "validation", EVENTS, max_value_bytes=1000)
        headers = dict(record.headers or [])
        assert record.value == big[:1000]
        assert (record.key, headers["traceparent"]) == (b"app-1", b"00-abc"), "the key and headers had room"
        assert headers["dlq.truncated"] == b"true"
        assert headers["dlq.original_bytes"] == b"5000"
        assert headers["dlq.original_sha256"] == hashlib.sha256(big).hexdigest().encode()
        assert "dlq.original_key_bytes" not in headers and "dlq.headers_dropped" not in headers

    def test_a_huge_key_and_many_big_headers_are_cut_so_the_whole_record_fits_and_the_reason_is_kept(self) -> None:
        key, value = b"k" * 1_200_000, b"v" * 950_000
        copied: list[tuple[str, str | bytes | None]] = [(f"h{i}", b"x" * 1000) for i in range(2000)]
        source = _message(value, key=key, headers=copied)
        record = dead_letter(source, "dlq", "invalid_json", "EOF", "validation", EVENTS)
        headers = dict(record.headers or [])
        assert record_bytes(record) <= MAX_RECORD_BYTES
        assert (headers["dlq.reason"], headers["dlq.error"], headers["dlq.source.offset"]) == (
            b"invalid_json", b"EOF", b"41")
        assert headers["dlq.truncated"] == b"true"
        assert (headers["dlq.original_bytes"], headers["dlq.original_key_bytes"]) == (b"950000", b"1200000")
        assert headers["dlq.original_key_sha256"] == hashlib.sha256(key).hexdigest().encode()
        assert headers["dlq.headers_dropped"] == b"2000"
        assert record.value == b"" and record.key is not None and key.startswith(record.key)
        _producer_accepts(record)  # librdkafka's own check (message.max.bytes: key, value and headers)

    def test_the_value_is_cut_first_then_the_copied_headers_then_the_key(self) -> None:
        key, value = b"k" * 50_000, b"v" * 900_000
        copied: list[tuple[str, str | bytes | None]] = [(f"h{i}", b"x" * 1000) for i in range(60)]
        record = dead_letter(_message(value, key=key, headers=copied), "dlq", "too_large", "big", "validation", EVENTS)
        headers = record.headers or []
        assert record.key == key and headers[:60] == copied, "the key and the copied headers fit whole"
        assert record.value is not None and value.startswith(record.value) and len(record.value) > 700_000
        assert record_bytes(record) <= MAX_RECORD_BYTES
        _producer_accepts(record)

    def test_a_very_long_error_is_capped(self) -> None:
        record = dead_letter(_message(b"{}"), "dlq", "schema_violation", "e" * 10_000, "validation", EVENTS)
        assert len(dict(record.headers or [])["dlq.error"] or b"") == 1024


class TestReducedDeadLetter:
    """What is published instead of a dead letter the broker refused as too large (a topic whose
    max.message.bytes is below the cap)."""

    def test_it_keeps_the_reason_and_the_original_sizes_and_sha256_and_fits_in_a_few_kilobytes(self) -> None:
        key, value = b"app-1", b"v" * 950_000  # the value was already cut once, to the cap
        copied: list[tuple[str, str | bytes | None]] = [(f"h{i}", b"x" * 2000) for i in range(20)]
        source = _message(value, key=key, headers=copied)
        refused = dead_letter(source, "dlq", "invalid_json", "EOF", "validation", EVENTS)
        record = reduced(refused)
        assert record is not None
        headers = dict(record.headers or [])
        assert record_bytes(record) < 4096 and record.key == key
        assert (headers["dlq.reason"], headers["dlq.error"], headers["dlq.stage"]) == (
            b"invalid_json", b"EOF", b"validation")
        assert headers["dlq.truncated"] == b"true"
        assert headers["dlq.original_bytes"] == b"950000", "the original's size, not the cut value's"
        assert headers["dlq.original_sha256"] == hashlib.sha256(value).hexdigest().encode()
        assert headers["dlq.headers_dropped"] == b"20"

    def test_a_dead_letter_that_small_already_is_itself_and_a_record_that_is_no_dead_letter_is_none(self) -> None:
        record = reduced(dead_letter(_message(b"v" * 100_000), "dlq", "invalid_json", "EOF", "validation", EVENTS))
        assert record is not None
        assert reduced(record) is record
        assert reduced(OutboundRecord("decisions", b"app-1", b"{}" * 100_000)) is None

    def test_the_publishers_hook_counts_a_dead_letter_it_cut_down_and_resends_a_small_one_as_it_is(self) -> None:
        big = dead_letter(_message(b"v" * 100_000), "dlq", "invalid_json", "EOF", "validation", EVENTS)
        small = dead_letter(_message(b"{"), "dlq", "invalid_json", "EOF", "validation", EVENTS)
        before = metrics.DEAD_LETTERS_REDUCED._value.get()

        assert refused_as_too_large(big) == reduced(big)
        assert refused_as_too_large(small) is small, "refused only for the record batch it shared"
        assert refused_as_too_large(OutboundRecord("decisions", b"app-1", b"{}")) is None
        assert metrics.DEAD_LETTERS_REDUCED._value.get() == before + 1
