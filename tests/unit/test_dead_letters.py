"""A dead letter is the original record, untouched, with the reason in headers."""

from __future__ import annotations

import hashlib

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamer.stages.dead_letters import dead_letter


def _message(value: bytes | None) -> Message:
    return Message(
        topic="loan-applications", partition=2, offset=41, key=b"app-1", value=value,
        headers=[("traceparent", b"00-abc")], timestamp=(TIMESTAMP_CREATE_TIME, 1_795_305_600_000),
    )


class TestDeadLetter:
    def test_keeps_key_value_and_headers_and_adds_reason_and_source(self) -> None:
        record = dead_letter(_message(b'{"broken'), "dlq", "invalid_json", "EOF while parsing", "validation")
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
        record = dead_letter(_message(big), "dlq", "too_large", "too big", "validation", max_value_bytes=1000)
        headers = dict(record.headers or [])
        assert record.value == big[:1000]
        assert headers["dlq.truncated"] == b"true"
        assert headers["dlq.original_bytes"] == b"5000"
        assert headers["dlq.original_sha256"] == hashlib.sha256(big).hexdigest().encode()

    def test_a_very_long_error_is_capped(self) -> None:
        record = dead_letter(_message(b"{}"), "dlq", "schema_violation", "e" * 10_000, "validation")
        assert len(dict(record.headers or [])["dlq.error"] or b"") == 1024
