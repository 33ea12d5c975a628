"""A dead letter the broker refuses for its size (a dead-letter topic with a max.message.bytes below Kafka's
1 MB default) is published again cut down, and counted, instead of failing its batch on every retry."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer import metrics
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config, producer_config
from streamer.runtime.publisher import Publisher
from streamer.stages.dead_letters import dead_letter, dead_letter_events, refused_as_too_large
from tests.conftest import KAFKA_ONLY, Isolated
from tests.integration.helpers import header_bytes

EVENTS = dead_letter_events("urn:streamer:test")
pytestmark = [pytest.mark.integration, KAFKA_ONLY]  # Tansu takes records of any size

TOPIC_LIMIT = 20_000  # the dead-letter topic's max.message.bytes


def _source(offset: int, value: bytes) -> Message:
    return Message(topic="loan-applications", partition=0, offset=offset, key=f"app-{offset}".encode(), value=value,
                   headers=[("traceparent", b"00-abc")], timestamp=(TIMESTAMP_CREATE_TIME, 1_795_305_600_000))


def test_a_dead_letter_the_topic_refuses_for_its_size_is_published_cut_down(isolated: Isolated) -> None:
    s = isolated.settings
    topic = f"dlq-small-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(common_config(s))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                  config={"max.message.bytes": str(TOPIC_LIMIT)})])[topic].result(timeout=30)
    big_value = b"v" * 100_000
    big = dead_letter(_source(5, big_value), topic, "invalid_json", "EOF while parsing", "validation", EVENTS)
    small = dead_letter(_source(6, b'{"broken'), topic, "invalid_json", "EOF while parsing", "validation", EVENTS)
    reduced_before = metrics.DEAD_LETTERS_REDUCED._value.get()

    publisher = Publisher(producer_config(s), too_large=refused_as_too_large)
    try:
        # One produce request: the broker refuses the whole record batch, the small dead letter with the big.
        publisher.publish([small, big])  # raises DeliveryFailed if a refusal fails the batch
    finally:
        publisher.close()

    reader = TopicReader(s, topic)
    try:
        assert reader.read_until(lambda records: len(records) >= 2, 30)
        by_offset = {header_bytes(r)["dlq.source.offset"]: r for r in reader.records}
    finally:
        reader.close()
    assert sorted(by_offset) == [b"5", b"6"]
    assert (by_offset[b"6"].value(), header_bytes(by_offset[b"6"])) == (small.value, dict(small.headers or [])), (
        "the small dead letter is published as it is")
    record = by_offset[b"5"]
    headers = header_bytes(record)
    assert (headers["dlq.reason"], headers["dlq.error"], headers["dlq.source.offset"]) == (
        b"invalid_json", b"EOF while parsing", b"5")
    assert (headers["dlq.truncated"], headers["dlq.original_bytes"], headers["dlq.original_sha256"]) == (
        b"true", b"100000", hashlib.sha256(big_value).hexdigest().encode())
    assert record.key() == b"app-5" and len(record.value() or b"") <= 1024
    assert len(record.value() or b"") + sum(len(k) + len(v) for k, v in headers.items()) < 4096
    assert metrics.DEAD_LETTERS_REDUCED._value.get() == reduced_before + 1
