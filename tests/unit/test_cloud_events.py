"""Decisions and dead letters are CloudEvents in Kafka's binary content mode, with the application's trace."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamer.core.cloud_events import DEAD_LETTER_TYPE, DECISION_TYPE, EventHeaders, dead_letter_id
from streamer.core.policy import DecisionPolicy
from streamer.local.synthetic import ApplicationFactory
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, load_entry
from streamer.runtime.publisher import OutboundRecord
from streamer.stages.dead_letters import cut, dead_letter, dead_letter_events, reduced
from streamer.stages.scoring import ScoringStage, ScoringTopics

REPO = Path(__file__).resolve().parents[2]
SOURCE = "urn:streamer:test"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(offset: int, value: bytes, headers: list[tuple[str, str | bytes | None]] | None = None) -> Message:
    return Message(topic="loan-applications", partition=3, offset=offset, key=b"k", value=value, headers=headers,
                   timestamp=(TIMESTAMP_CREATE_TIME, 1_796_000_000_000))


def _headers(record: OutboundRecord) -> dict[str, bytes]:
    """The last value of each header, as bytes (what a consumer reads)."""
    return {name: value.encode() if isinstance(value, str) else value or b"" for name, value in record.headers or []}


@pytest.fixture(scope="module")
def stage() -> ScoringStage:
    slot = ModelSlot(load_entry(champion(REPO / "onnx_models")))
    return ScoringStage(slot, DecisionPolicy(), None, ScoringTopics("loan-decisions", "dlq"), 64_000, SOURCE)


class TestEventHeaders:
    def test_an_event_has_the_binary_mode_attributes_then_its_trace(self) -> None:
        headers = EventHeaders(SOURCE, DECISION_TYPE, "application/json").of(
            "id-1", "2026-12-02T10:00:00Z", [("traceparent", TRACEPARENT)])
        assert headers == [
            ("ce_specversion", b"1.0"), ("ce_source", SOURCE.encode()), ("ce_type", b"com.streamer.loan.decision.v1"),
            ("content-type", b"application/json"), ("ce_id", b"id-1"), ("ce_time", b"2026-12-02T10:00:00Z"),
            ("traceparent", TRACEPARENT),
        ]

    def test_a_dead_letter_id_is_the_same_for_the_same_source_record_and_differs_for_another(self) -> None:
        assert dead_letter_id("loan-applications", 3, 41) == dead_letter_id("loan-applications", 3, 41)
        assert len({dead_letter_id("t", 3, 41), dead_letter_id("t", 3, 42), dead_letter_id("t", 4, 41),
                    dead_letter_id("u", 3, 41)}) == 4


class TestDecisionRecords:
    def test_a_decision_is_a_cloud_event_whose_id_and_time_are_the_decisions(self, stage: ScoringStage) -> None:
        [record] = stage.decide([_record(1, orjson.dumps(ApplicationFactory(seed=3).valid()))]).records
        headers, decision = _headers(record), orjson.loads(record.value or b"")
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == decision["decision_id"].encode()
        assert headers["ce_source"] == SOURCE.encode()
        assert headers["ce_type"] == DECISION_TYPE.encode()
        assert headers["ce_time"] == decision["decided_at"].encode()
        assert datetime.fromisoformat(headers["ce_time"].decode()).tzinfo is not None, "RFC 3339, with its offset"
        assert headers["content-type"] == b"application/json"
        assert "traceparent" not in headers
        assert not record.reducible, "a decision shares the batch's delivery callback"

    def test_the_applications_valid_trace_context_goes_on_to_its_decision_and_an_invalid_one_does_not(
        self, stage: ScoringStage
    ) -> None:
        factory = ApplicationFactory(seed=4)
        traced = _record(1, orjson.dumps(factory.valid()), [("traceparent", TRACEPARENT), ("tracestate", b"a=1")])
        garbled = _record(2, orjson.dumps(factory.valid()), [("traceparent", TRACEPARENT.upper())])
        first, second = stage.decide([traced, garbled]).records
        assert (_headers(first)["traceparent"], _headers(first)["tracestate"]) == (TRACEPARENT, b"a=1")
        assert "traceparent" not in _headers(second)


class TestDeadLetterRecords:
    def test_a_dead_letter_is_a_cloud_event_of_its_own_after_the_original_headers(self, stage: ScoringStage) -> None:
        original: list[tuple[str, str | bytes | None]] = [
            ("traceparent", TRACEPARENT), ("ce_type", b"com.example.application"), ("content-type", b"x")]
        [record] = stage.decide([_record(41, b'{"broken', original)]).records
        headers = _headers(record)
        assert record.headers is not None and record.headers[:3] == original, "the original headers, as they were"
        assert headers["ce_type"] == DEAD_LETTER_TYPE.encode(), "ours come last"
        assert headers["ce_id"] == dead_letter_id("loan-applications", 3, 41).encode()
        assert headers["ce_time"] == headers["dlq.failed_at"]
        assert headers["ce_source"] == SOURCE.encode()
        assert headers["content-type"] == b"application/octet-stream", "the value is the original bytes"
        assert headers["traceparent"] == TRACEPARENT
        assert record.reducible

    def test_a_dead_letter_cut_to_size_keeps_its_cloud_event_headers_whole(self) -> None:
        events = dead_letter_events(SOURCE)
        copied: list[tuple[str, str | bytes | None]] = [(f"h{i}", b"x" * 2000) for i in range(20)]
        record = dead_letter(_record(7, b"v" * 950_000, copied), "dlq", "invalid_json", "EOF", "validation", events)
        for smaller in (cut(record, 10_000), reduced(record)):
            assert smaller is not None
            headers = _headers(smaller)
            assert headers["ce_id"] == dead_letter_id("loan-applications", 3, 7).encode()
            assert {"ce_specversion", "ce_source", "ce_type", "ce_time", "content-type"} <= set(headers)
            assert smaller.reducible
