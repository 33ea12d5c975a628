"""Dead letters: the original record untouched, and why, in headers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from confluent_kafka import Message

from streamer.runtime.publisher import OutboundRecord

MAX_DETAIL_BYTES = 1024
# Kafka's default max.message.bytes is 1 MB; a bigger value could never be dead-lettered whole.
MAX_VALUE_BYTES = 900_000


def dead_letter(
    message: Message, topic: str, reason: str, detail: str, stage: str, max_value_bytes: int = MAX_VALUE_BYTES
) -> OutboundRecord:
    """Key and value are the source record's bytes; original headers are kept, ours are prefixed `dlq.`.

    A value larger than `max_value_bytes` is cut to that size and says so (`dlq.truncated`, with the
    original size and sha256), so that one giant record cannot block the dead-letter topic.
    """
    timestamp_type, timestamp_ms = message.timestamp()
    value = message.value()
    headers: list[tuple[str, str | bytes | None]] = [
        *(message.headers() or []),
        ("dlq.reason", reason.encode()),
        ("dlq.error", detail.encode()[:MAX_DETAIL_BYTES]),
        ("dlq.stage", stage.encode()),
        ("dlq.source.topic", (message.topic() or "").encode()),
        ("dlq.source.partition", str(message.partition()).encode()),
        ("dlq.source.offset", str(message.offset()).encode()),
        ("dlq.source.timestamp_ms", str(timestamp_ms if timestamp_type else "").encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    if value is not None and len(value) > max_value_bytes:
        headers += [
            ("dlq.truncated", b"true"),
            ("dlq.original_bytes", str(len(value)).encode()),
            ("dlq.original_sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
        value = value[:max_value_bytes]
    return OutboundRecord(topic=topic, key=message.key(), value=value, headers=headers)
