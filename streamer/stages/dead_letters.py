"""Dead letters: the original record untouched, and why, in headers; cut to a size any topic takes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from confluent_kafka import Message

from streamer import metrics
from streamer.core.cloud_events import DEAD_LETTER_TYPE, OCTET_STREAM, EventHeaders, dead_letter_id
from streamer.logging import get_logger
from streamer.runtime.publisher import OutboundRecord

log = get_logger(__name__)

MAX_DETAIL_BYTES = 1024
# librdkafka refuses a record whose key, value and headers pass its message.max.bytes (1,000,000 by default),
# and Kafka's default max.message.bytes is 1 MB: a bigger dead letter could never be published, and would
# hold its partition forever. A value is cut to MAX_VALUE_BYTES, and the whole record to MAX_RECORD_BYTES
# (a big key or big headers); the headers say what was cut.
MAX_VALUE_BYTES = 900_000
MAX_RECORD_BYTES = 960_000
# A dead letter the broker still refuses (a topic with a smaller max.message.bytes) is cut to this much
# beside its dlq.* headers.
REDUCED_BYTES = 1024
_HEADER_OVERHEAD = 10  # per header on the wire: two varint lengths, and some to spare
_NOTES = ("dlq.truncated", "dlq.original_bytes", "dlq.original_sha256", "dlq.original_key_bytes",
          "dlq.original_key_sha256", "dlq.headers_dropped")
_NOTES_BYTES = 512  # the most _NOTES take: names, two sha256s, three sizes, overhead

Header = tuple[str, str | bytes | None]


def dead_letter_events(source: str) -> EventHeaders:
    """The CloudEvents headers of a worker's dead letters (`source`: its `Settings.event_source`)."""
    return EventHeaders(source, DEAD_LETTER_TYPE, OCTET_STREAM)


def dead_letter(
    message: Message, topic: str, reason: str, detail: str, stage: str, events: EventHeaders,
    max_value_bytes: int = MAX_VALUE_BYTES, max_record_bytes: int = MAX_RECORD_BYTES,
) -> OutboundRecord:
    """Key and value are the source record's bytes; original headers are kept, ours follow them: `dlq.*`,
    then the dead letter's CloudEvents headers (`events`; a reader that takes a header's last value gets
    ours, not those of a source record that was a CloudEvent itself).

    A value over `max_value_bytes`, or a record over `max_record_bytes`, is cut (`cut`), so that one giant
    record cannot block the topic.
    """
    timestamp_type, timestamp_ms = message.timestamp()
    source_topic, partition, offset = message.topic() or "", message.partition(), message.offset()
    failed_at = datetime.now(UTC).isoformat()
    ours: list[Header] = [
        ("dlq.reason", reason.encode()),
        ("dlq.error", detail.encode()[:MAX_DETAIL_BYTES]),
        ("dlq.stage", stage.encode()),
        ("dlq.source.topic", source_topic.encode()),
        ("dlq.source.partition", str(partition).encode()),
        ("dlq.source.offset", str(offset).encode()),
        ("dlq.source.timestamp_ms", str(timestamp_ms if timestamp_type else "").encode()),
        ("dlq.failed_at", failed_at.encode()),
        *events.of(dead_letter_id(source_topic, partition or 0, offset or 0), failed_at, []),
    ]
    record = OutboundRecord(topic, message.key(), message.value(), [*(message.headers() or []), *ours], True)
    if len(record.value or b"") <= max_value_bytes and record_bytes(record) <= max_record_bytes:
        return record
    return cut(record, max_record_bytes, max_value_bytes)


def cut(record: OutboundRecord, max_record_bytes: int, max_value_bytes: int | None = None) -> OutboundRecord:
    """The dead letter cut to `max_record_bytes`: our dlq.* headers stay whole; the key, then the copied
    headers in order, then the value (up to `max_value_bytes`) get what room is left, so the value is cut
    first and the key last.
    What was cut is named in `dlq.truncated`, `dlq.original_bytes` / `_sha256` (the value),
    `dlq.original_key_bytes` / `_sha256` and `dlq.headers_dropped` (kept from an earlier cut)."""
    copied, ours, notes = _parts(record.headers or [])
    room = max_record_bytes - _headers_bytes(ours) - _NOTES_BYTES
    key, value = record.key, record.value
    if key is not None and len(key) > room:
        notes.setdefault("dlq.original_key_bytes", str(len(key)).encode())
        notes.setdefault("dlq.original_key_sha256", hashlib.sha256(key).hexdigest().encode())
        key = key[:max(0, room)]
    room -= len(key or b"")
    kept: list[Header] = []
    for header in copied:
        if _headers_bytes([header]) > room:
            break
        kept.append(header)
        room -= _headers_bytes([header])
    if len(kept) < len(copied):
        dropped = len(copied) - len(kept) + int(notes.get("dlq.headers_dropped") or b"0")
        notes["dlq.headers_dropped"] = str(dropped).encode()
    room = room if max_value_bytes is None else min(room, max_value_bytes)
    if value is not None and len(value) > room:
        notes.setdefault("dlq.original_bytes", str(len(value)).encode())
        notes.setdefault("dlq.original_sha256", hashlib.sha256(value).hexdigest().encode())
        value = value[:max(0, room)]
    if notes:
        notes["dlq.truncated"] = b"true"
    ordered = [(name, notes[name]) for name in _NOTES if name in notes]
    return OutboundRecord(record.topic, key, value, [*kept, *ours, *ordered], True)


def reduced(record: OutboundRecord) -> OutboundRecord | None:
    """The dead letter cut to REDUCED_BYTES beside its dlq.* headers (itself if it is that small already);
    None if it is no dead letter."""
    headers = record.headers or []
    if not any(name == "dlq.reason" for name, _ in headers):
        return None
    _, ours, _ = _parts(headers)
    limit = _headers_bytes(ours) + _NOTES_BYTES + REDUCED_BYTES
    return record if record_bytes(record) <= limit else cut(record, limit)


def refused_as_too_large(record: OutboundRecord) -> OutboundRecord | None:
    """The Publisher's `too_large`: a dead letter the broker refused for its size goes out reduced, counted
    and logged (where it came from and its sizes, never its content). One that small already goes out again
    as it is: the broker refuses a whole record batch, and it may only have shared one with a big record.
    The publisher replaces a record once; a replacement refused in turn (a topic that takes not even a few
    kilobytes) fails the batch, which is retried."""
    smaller = reduced(record)
    if smaller is not None and smaller is not record:
        headers = dict(record.headers or [])
        metrics.DEAD_LETTERS_REDUCED.inc()
        log.warning(
            "dead_letter_reduced", topic=record.topic, reason=_text(headers.get("dlq.reason")),
            source_topic=_text(headers.get("dlq.source.topic")),
            source_partition=_text(headers.get("dlq.source.partition")),
            source_offset=_text(headers.get("dlq.source.offset")),
            refused_bytes=record_bytes(record), published_bytes=record_bytes(smaller),
        )
    return smaller


def record_bytes(record: OutboundRecord) -> int:
    """A record's size as the broker counts it, a little over: key, value and headers."""
    return len(record.key or b"") + len(record.value or b"") + _headers_bytes(record.headers or [])


def _headers_bytes(headers: list[Header]) -> int:
    return sum(len(name.encode()) + len(_raw(value)) + _HEADER_OVERHEAD for name, value in headers)


def _parts(headers: list[Header]) -> tuple[list[Header], list[Header], dict[str, bytes]]:
    """The copied headers, ours (from our `dlq.reason`, the last one, on: `dlq.*` and `ce_*`) and the notes of
    an earlier cut."""
    start = max((i for i, (name, _) in enumerate(headers) if name == "dlq.reason"), default=len(headers))
    ours = [h for h in headers[start:] if h[0] not in _NOTES]
    notes = {name: _raw(value) for name, value in headers[start:] if name in _NOTES}
    return headers[:start], ours, notes


def _raw(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


def _text(value: str | bytes | None) -> str:
    return _raw(value).decode("utf-8", "replace")
