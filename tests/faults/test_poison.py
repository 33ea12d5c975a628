"""5. Poison input: payloads drawn from the JSON Schema and mutated, plus hand-picked nasties, mixed with
valid applications. Each payload ends as exactly one decision or one dead letter (a clean run has no
redelivery, so no duplicates either), every dead letter is the published record byte for byte (key, value
and headers, a value over 900,000 bytes cut to that size) plus the documented `dlq.*` headers, the worker
never stops, and its memory does not grow with the number of payloads. The test makes the input topic
itself, so that it takes records up to 12 MB, as the 10 MB record needs on Apache Kafka.

Memory: after a warm-up (2,000 valid applications, the first 500 generated payloads and the hand-picked
ones, so every code path has been used once and the 10 MB record has grown librdkafka's and Python's
buffers once), the rest is published in two halves of at least `HALF_MIN` payloads, each as fast as the
producer goes. The first half brings the buffers to their full-speed size (librdkafka fetches ahead up to
16 MB per consumer, batches of 1,000 records are in flight). The second, the same kind of work again, is
published in `SEGMENTS` parts. For each part the highest RSS is kept (sampled every 0.25 s while it runs,
and once more when the worker is idle after it), and the median growth of that from part to part must
stay under `FLAT_MB_PER_1000` per 1,000 payloads. A worker that kept 1 KB of every payload grows 1 MB per
1,000 in every part. The highest RSS, not the idle one, because the allocator sometimes gives 30 MB back
when the worker goes idle and takes it again in the next part; the median, because RSS also moves in
steps: it may jump by 20 MB once, in any part, when the buffers reach their full size late, and that is
not growth with the work. The quick form has 4,000 distinct payloads after the warm-up; its halves are
filled with copies of them (valid ones renamed, so each still gets a decision of its own). RSS never
exceeds 300 MB, the per-worker budget, from the start, the 10 MB record included. (Probes, Tansu, quick,
idle RSS after the warm-up and every 10,000 payloads: 154.3, 186.3, 186.7, 188.4, 188.9, 189.6, 189.6 MB
and 152.9, 181.2, 182.3, 182.4, 184.4, 184.4, 184.5 MB. One run stood at 204.7 MB idle after the first
half, 171.0, 190.4 and 190.5 after the parts of the second, never above 205.2 meanwhile; another at 176.9
after the first half and 195.9 at the end. With 1 KB kept per record scored, 30,000 payloads added 30.7
MB; with every record's value kept (1.8 KB on average here), 78 MB.)
"""

from __future__ import annotations

import hashlib
import itertools
import random
import statistics
import threading
import uuid
from collections.abc import Sequence

import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer.config import Settings
from streamer.runtime.clients import common_config
from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import (
    Headers,
    Ledger,
    Payload,
    Position,
    check_promise,
    dead_letter_records_by_source,
    idle_rss_mb,
    log_events,
    publish_all_with_headers,
    renamed_copies,
    report,
    rss_mb,
    settle,
    spawn,
    synthetic,
)
from tests.faults.poison import hand_picked, mutated, original_headers, schema_documents
from tests.integration.helpers import header_bytes

pytestmark = [pytest.mark.faults, pytest.mark.integration]

HALF_MIN, SEGMENTS = 30_000, 3
FLAT_MB_PER_1000, PEAK_MB = 0.5, 300.0
BIG_RECORD_LIMIT = 12_000_000  # the input topic's max.message.bytes, and the test producer's message.max.bytes
DLQ_VALUE_LIMIT = 900_000  # README, "Dead letters": a value over this many bytes is cut to this size
DLQ_HEADERS = {"dlq.reason", "dlq.error", "dlq.stage", "dlq.source.topic", "dlq.source.partition",
               "dlq.source.offset", "dlq.source.timestamp_ms", "dlq.failed_at"}
DLQ_CUT_HEADERS = {"dlq.truncated", "dlq.original_bytes", "dlq.original_sha256"}


def test_poison_payloads_each_end_in_one_place_and_the_worker_stays_up_and_flat(
    isolated: Isolated, size: Sizes
) -> None:
    s, tag = isolated.settings, uuid.uuid4().hex[:6]
    create_input_topic_for_big_records(s)
    worker = spawn(isolated.env, isolated.run_dir / "worker.log", isolated.stack.workers, wait=False)
    picked = hand_picked(tag)
    wrong = [(p.label, p.expected_reason, want) for p, want in picked if p.expected_reason != want]
    assert not wrong, f"validation disagrees with the README on: {wrong}"
    generated = mutated(schema_documents(size.poison_seeds), size.poison_generated, tag)
    valid = synthetic(2_000 + size.poison_generated // 2, 0, seed=105)
    warm_up = valid[:1000] + generated[:500] + [p for p, _ in picked] + valid[1000:2000]
    mixed: list[Payload] = generated[500:] + valid[2000:]
    random.Random(5).shuffle(mixed)
    distinct = len(mixed)
    mixed += renamed_copies(mixed, max(0, 2 * HALF_MIN - len(mixed)), "r")
    payloads = warm_up + mixed
    headers = [original_headers(n) for n in range(len(payloads))]
    worker.wait_ready()
    assert worker.process is not None
    pid = worker.process.pid
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            samples.append(rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    half = len(mixed) // 2
    second = len(warm_up) + half  # where the second half starts
    cuts = [0, len(warm_up), *(second + (len(payloads) - second) * k // SEGMENTS for k in range(SEGMENTS + 1))]
    positions: list[Position | None] = []
    ends: dict[tuple[str, int], int] = {}
    idle: list[float] = []  # idle RSS after the warm-up, the first half and each part of the second
    highest: list[float] = []  # the highest RSS during each of them, idle after it included
    for start, end in itertools.pairwise(cuts):
        sampled = len(samples)
        part = publish_all_with_headers(s, payloads[start:end], headers[start:end])
        positions += part.positions
        ends |= part.ends()
        ledger = settle(s, ends, timeout_s=600)
        idle.append(idle_rss_mb(pid))
        highest.append(max([*samples[sampled:], idle[-1]]))
    done.set()
    sampler.join()
    account = check_promise(ledger, payloads, positions, s.database_url.get_secret_value())
    verbatim = check_dead_letters_verbatim(ledger, payloads, positions, headers, s.input_topic)

    huge = next(p for p, _ in picked if p.label == "10 MB value").value or b""
    cut = [(r.value(), header_bytes(r)) for r in ledger.dead_letters if "dlq.truncated" in header_bytes(r)]
    assert [(v, h["dlq.original_bytes"], h["dlq.original_sha256"]) for v, h in cut] == [
        (huge[:DLQ_VALUE_LIMIT], str(len(huge)).encode(), hashlib.sha256(huge).hexdigest().encode())
    ], "the 10 MB record is dead-lettered once, cut to its first 900,000 bytes, with its size and digest"
    assert account.duplicate_decision_events == 0 and account.duplicate_dead_letters == 0
    assert verbatim == account.dead_letters
    assert worker.process.poll() is None and worker.process.pid == pid, "the worker died of bad input"
    events = log_events(isolated.run_dir / "worker.log")
    assert events["batch_failed"] == 0, "a batch failed on bad input (and was retried)"
    per_1000 = [(highest[k + 1] - highest[k]) / ((cuts[k + 2] - cuts[k + 1]) / 1000) for k in range(1, SEGMENTS + 1)]
    assert statistics.median(per_1000) < FLAT_MB_PER_1000, (
        f"RSS grew by a median {statistics.median(per_1000):.2f} MB per 1,000 payloads from part to part of the "
        f"second half (allowed {FLAT_MB_PER_1000}); highest RSS in the warm-up, the first half and each part: "
        f"{[round(r, 1) for r in highest]} MB, idle after each: {[round(r, 1) for r in idle]} MB"
    )
    assert max(samples, default=idle[-1]) < PEAK_MB, f"RSS peaked at {max(samples):.0f} MB"
    report(size.name, "poison", {
        **account.as_dict(), "payloads": len(payloads), "distinct_after_warm_up": distinct, "half": half,
        "generated": len(generated), "hand_picked": len(picked), "dead_letters_checked_verbatim": verbatim,
        "idle_rss_mb": [round(r, 1) for r in idle], "highest_rss_mb": [round(r, 1) for r in highest],
        "peak_rss_mb": round(max(samples, default=0), 1),
        "second_half_mb_per_1000": [round(g, 2) for g in per_1000],
    })


def create_input_topic_for_big_records(s: Settings) -> None:
    """The input topic, made before the worker would make it, with room for the 10 MB record: Apache Kafka
    refuses records over 1 MB by default (`max.message.bytes`), and a topic that cannot take a too-large
    record never shows what the worker does with one. (Tansu takes any size.)"""
    admin = AdminClient(common_config(s))
    topic = NewTopic(s.input_topic, num_partitions=s.topic_partitions, replication_factor=s.topic_replication,
                     config={"max.message.bytes": str(BIG_RECORD_LIMIT)})
    admin.create_topics([topic], operation_timeout=30)[s.input_topic].result(timeout=30)


def check_dead_letters_verbatim(
    ledger: Ledger, payloads: Sequence[Payload], positions: Sequence[Position | None], headers: Sequence[Headers],
    input_topic: str,
) -> int:
    """For every payload that must become a dead letter, each of its dead letters against the published
    record (`assert_dead_letter_verbatim`); returns how many dead letters were checked."""
    found = dead_letter_records_by_source(ledger)
    checked = 0
    for payload, position, sent in zip(payloads, positions, headers, strict=True):
        if payload.expected_reason is None or position is None:
            continue
        for record in found[position]:
            assert_dead_letter_verbatim(record, payload, sent, input_topic)
            checked += 1
    return checked


# The dead letter's own CloudEvents headers, after its dlq.* ones (README, "Dead letters").
CLOUD_EVENT_HEADERS = sorted(("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"))


def assert_dead_letter_verbatim(record: Message, payload: Payload, sent: Headers, input_topic: str) -> None:
    """The README's promise on one dead letter: the published key, value and headers, byte for byte and the
    headers in their order, plus exactly the documented `dlq.*` headers and the CloudEvents ones after them; a
    value over 900,000 bytes is cut to its first 900,000, with `dlq.truncated`, its size and its sha256."""
    where = f"dead letter of {payload.label!r}"
    raw = record.headers() or []
    got = [(k, v.encode() if isinstance(v, str) else v) for k, v in (raw.items() if isinstance(raw, dict) else raw)]
    assert record.key() == payload.key, f"{where}: key {record.key()!r}, published {payload.key!r}"
    start = max((i for i, (k, _) in enumerate(got) if k == "dlq.reason"), default=len(got))  # ours begin there
    original = got[:start]
    assert original == sent, f"{where}: original headers {original}, published {sent}"
    ours = {k: v or b"" for k, v in got[start:] if k.startswith("dlq.")}
    events = sorted(k for k, _ in got[start:] if not k.startswith("dlq."))
    assert events == CLOUD_EVENT_HEADERS, f"{where}: after the dlq.* headers {events}"
    assert len(ours) + len(events) == len(got) - start, f"{where}: a dlq.* header appears twice: {got}"
    assert ours["dlq.source.topic"] == input_topic.encode(), f"{where}: {ours['dlq.source.topic']!r}"
    value = payload.value
    if value is not None and len(value) > DLQ_VALUE_LIMIT:
        assert set(ours) == DLQ_HEADERS | DLQ_CUT_HEADERS, f"{where}: dlq headers {sorted(ours)}"
        assert record.value() == value[:DLQ_VALUE_LIMIT], f"{where}: value is not the first {DLQ_VALUE_LIMIT} bytes"
        assert (ours["dlq.truncated"], ours["dlq.original_bytes"], ours["dlq.original_sha256"]) == (
            b"true", str(len(value)).encode(), hashlib.sha256(value).hexdigest().encode()
        ), f"{where}: {ours}"
    else:
        assert set(ours) == DLQ_HEADERS, f"{where}: dlq headers {sorted(ours)}"
        assert record.value() == value, (
            f"{where}: value {(record.value() or b'')[:80]!r} ({len(record.value() or b'')} bytes) is not the "
            f"published {(value or b'')[:80]!r} ({len(value or b'')} bytes)"
        )
