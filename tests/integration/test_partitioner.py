"""Decisions land on the partition Apache Kafka's Java producer picks for the same key (murmur2), so a
consumer joining `loan-decisions` with `loan-applications` by `application_id` finds both on the same
partition number when the topics have the same partition count. librdkafka's default partitioner
(`consistent_random`, CRC32) picks other partitions for most keys."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer.local.kafka_jars import ensure_kafka_jars, java_binary
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config, producer_config
from streamer.runtime.publisher import OutboundRecord, Publisher
from tests.conftest import KAFKA_ONLY, Isolated

pytestmark = [pytest.mark.integration, KAFKA_ONLY]  # the Java partitioner needs the Kafka tier's JVM and jars

PARTITIONS = 7
KEY_PARTITIONS_JAVA = Path(__file__).with_name("java") / "KeyPartitions.java"


def java_partitions(keys: list[str], partitions: int) -> list[int]:
    """The partition of each key by Kafka's own BuiltInPartitioner.partitionForKey, run in a JVM."""
    java = java_binary()
    assert java is not None
    libs = ensure_kafka_jars()
    classpath = ":".join(str(next(libs.glob(pattern))) for pattern in ("kafka-clients-*.jar", "slf4j-api-*.jar"))
    done = subprocess.run([java, "-cp", classpath, str(KEY_PARTITIONS_JAVA), str(partitions)],
                          input="\n".join(keys) + "\n", capture_output=True, text=True, timeout=120, check=True)
    return [int(line) for line in done.stdout.split()]


def test_a_decision_key_lands_on_the_partition_javas_partitioner_picks(isolated: Isolated) -> None:
    s = isolated.settings
    topic = f"keys-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(common_config(s))
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=30)
    keys = [f"app-{uuid.UUID(int=i * 7919)}" for i in range(150)] + ["", "a", "application-ü-東京", "x" * 300]

    publisher = Publisher(producer_config(s))
    try:
        publisher.publish([OutboundRecord(topic, key.encode(), b"{}") for key in keys])
    finally:
        publisher.close()
    reader = TopicReader(s, topic)
    try:
        assert reader.read_until(lambda records: len(records) == len(keys), 30)
        landed = {(m.key() or b"").decode(): m.partition() for m in reader.records}
    finally:
        reader.close()

    expected = dict(zip(keys, java_partitions(keys, PARTITIONS), strict=True))
    assert len(set(expected.values())) == PARTITIONS  # the keys exercise every partition
    wrong = {key: (landed[key], expected[key]) for key in keys if landed[key] != expected[key]}
    assert wrong == {}, f"{len(wrong)} of {len(keys)} keys on another partition than Java's: {list(wrong.items())[:5]}"
