"""Waiting on the system under test without trusting Tansu's high watermarks."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from streamer.config import Settings
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config


def body(record: Message) -> dict[str, Any]:
    """A JSON record's value, parsed."""
    doc: dict[str, Any] = json.loads(record.value() or b"null")
    return doc


def header_bytes(record: Message) -> dict[str, bytes]:
    """A record's headers; a header without a value reads as b""."""
    raw = record.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v.encode() if isinstance(v, str) else (v or b"") for k, v in pairs}


def end_offsets(records: Sequence[Message]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for m in records:
        key = (m.topic() or "", m.partition() or 0)
        ends[key] = max(ends.get(key, 0), (m.offset() or 0) + 1)
    return ends


def committed(settings: Settings, group: str, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's committed offsets (an OffsetFetch; this does not join the group)."""
    consumer = Consumer({**common_config(settings), "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


def wait_until_consumed(settings: Settings, group: str, records: Sequence[Message], timeout_s: float = 60.0) -> None:
    """Block until `group` has committed past every one of `records`."""
    ends = end_offsets(records)
    deadline = time.monotonic() + timeout_s
    while True:
        done = committed(settings, group, list(ends))
        if all(done.get(k, -1) >= v for k, v in ends.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} committed {done}, expected {ends}")
        time.sleep(0.25)


def cluster_topics(settings: Settings) -> set[str]:
    """The cluster's topic names, leaving out the broker's own (`__consumer_offsets`, made at the first group)."""
    names = AdminClient(common_config(settings)).list_topics(timeout=10).topics
    return {name for name in names if not name.startswith("__")}


def consumer_groups(settings: Settings) -> set[str]:
    """The cluster's consumer group ids, in any state. Apache Kafka lists a group from its first JoinGroup;
    Tansu only once it has committed offsets, so there a group that commits nothing stays unseen."""
    admin = AdminClient(common_config(settings))  # held until the answer: a client dropped early fails it
    found = admin.list_consumer_groups(request_timeout=10).result(20)
    assert not found.errors, found.errors
    return {group.group_id for group in found.valid}


def scrape(port: int) -> dict[str, float]:
    """The worker's /metrics as {sample name with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def readiness(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s}s: {what}")
        time.sleep(0.25)


def decisions_read(settings: Settings, count: int, settle_s: float = 1.0) -> list[dict[str, object]]:
    """The decision topic's records as JSON, once it holds `count`, and whatever follows within `settle_s` (a
    decision too many must show)."""
    reader = TopicReader(settings, settings.decision_topic)
    try:
        assert reader.read_until(lambda r: len(r) >= count, 90), f"fewer than {count} decisions"
        reader.read_more(settle_s)
        return [json.loads(m.value() or b"{}") for m in reader.records]
    finally:
        reader.close()


def dead_letter_count(settings: Settings) -> int:
    reader = TopicReader(settings, settings.dlq_topic)
    try:
        reader.read_more(1.0)
        return len(reader.records)
    finally:
        reader.close()
