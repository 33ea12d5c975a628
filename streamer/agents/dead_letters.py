"""Dead letters: the original record untouched, and why, in headers."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Message

from streamer.kafka.publisher import OutboundRecord

MAX_DETAIL_BYTES = 1024
HEADER_PREFIX = "dlq."


def dead_letter(message: Message, topic: str, reason: str, detail: str, stage: str) -> OutboundRecord:
    """Key and value are the source record's bytes; original headers are kept, ours are prefixed `dlq.`."""
    timestamp_type, timestamp_ms = message.timestamp()
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
    return OutboundRecord(topic=topic, key=message.key(), value=message.value(), headers=headers)
