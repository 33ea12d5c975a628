"""Decisions and dead letters reach their topics as CloudEvents (Kafka binary mode) carrying the application's
trace context, and the audit still records every decision."""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson
import pytest
from confluent_kafka import Producer

from streamer.core.cloud_events import dead_letter_id
from streamer.local.synthetic import ApplicationFactory
from streamer.runtime.clients import common_config
from tests.conftest import Isolated
from tests.integration.helpers import body, header_bytes, wait_until_consumed
from tests.integration.test_end_to_end import _wait_for

pytestmark = pytest.mark.integration

SOURCE = "https://loans.example/scorer"
TRACED = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DEAD_TRACED = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def test_decisions_and_dead_letters_are_cloud_events_with_the_applications_trace_context(isolated: Isolated) -> None:
    s = isolated.settings
    isolated.start_worker(STREAMER_EVENT_SOURCE=SOURCE)
    factory = ApplicationFactory(seed=21)
    traced, garbled = factory.valid(), factory.valid()
    producer = Producer(common_config(s))
    producer.produce(s.input_topic, key=b"traced", value=orjson.dumps(traced),
                     headers=[("traceparent", TRACED), ("tracestate", b"congo=t61rcWkgMzE")])
    producer.produce(s.input_topic, key=b"garbled", value=orjson.dumps(garbled),
                     headers=[("traceparent", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01")])
    producer.produce(s.input_topic, key=b"broken", value=b'{"broken', headers=[("traceparent", DEAD_TRACED)])
    assert producer.flush(30) == 0

    decisions, dead_letters = _wait_for(isolated, 2, 1)

    assert len(decisions) == 2 and len(dead_letters) == 1
    by_application = {body(r)["application_id"]: r for r in decisions}
    for record in decisions:
        headers, decision = header_bytes(record), body(record)
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == decision["decision_id"].encode()
        assert headers["ce_source"] == SOURCE.encode()
        assert headers["ce_type"] == b"com.streamer.loan.decision.v1"
        assert datetime.fromisoformat(headers["ce_time"].decode()) == datetime.fromisoformat(decision["decided_at"])
        assert headers["content-type"] == b"application/json"
    traced_headers = header_bytes(by_application[traced["application_id"]])
    assert (traced_headers["traceparent"], traced_headers["tracestate"]) == (TRACED, b"congo=t61rcWkgMzE")
    assert "traceparent" not in header_bytes(by_application[garbled["application_id"]]), "an invalid one is dropped"

    [dead] = dead_letters
    headers = header_bytes(dead)
    assert (dead.key(), dead.value(), headers["dlq.reason"]) == (b"broken", b'{"broken', b"invalid_json")
    assert headers["traceparent"] == DEAD_TRACED
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_id"] == dead_letter_id(s.input_topic, int(headers["dlq.source.partition"]),
                                              int(headers["dlq.source.offset"])).encode()
    assert uuid.UUID(headers["ce_id"].decode()).version == 5
    assert (headers["ce_source"], headers["ce_type"]) == (SOURCE.encode(), b"com.streamer.loan.dead_letter.v1")
    assert headers["ce_time"] == headers["dlq.failed_at"]
    assert headers["content-type"] == b"application/octet-stream"

    wait_until_consumed(s, s.audit_group(), decisions)
    assert isolated.audit_rows() == 2, "the audit reads decisions with their headers as before"
