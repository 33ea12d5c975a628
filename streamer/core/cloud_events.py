"""CloudEvents 1.0 attributes as Kafka headers, in the Kafka protocol binding's binary content mode. Pure.

Binary mode keeps the value as it is (a Decision v1 document, a dead letter's original bytes) and puts
each attribute in a `ce_`-prefixed header, with `content-type` as the data's media type
(https://github.com/cloudevents/spec/blob/main/cloudevents/bindings/kafka-protocol-binding.md, 3.2).
Six headers need no SDK: the constant ones are built once per stage, so a decision costs a list of 7.
"""

from __future__ import annotations

import uuid

from streamer.core.trace_context import Header

SPEC_VERSION = "1.0"
# Reverse-DNS and versioned: a breaking change of the data gets a new type, as the topic's schema does.
DECISION_TYPE = "com.streamer.loan.decision.v1"
DEAD_LETTER_TYPE = "com.streamer.loan.dead_letter.v1"
JSON = "application/json"
# A dead letter's value is the source record's bytes: invalid JSON, empty or cut, as often as not.
OCTET_STREAM = "application/octet-stream"
# Dead letters' ids: a uuid5 of where the record came from, so a record dead-lettered again (a redone
# batch, a redelivery) gets the same id and consumers can dedupe on it.
DEAD_LETTER_ID_NAMESPACE = uuid.UUID("3b0f6c2e-8d1a-5e47-9c3b-7a2d4f6e8b10")


def default_source(app_id: str) -> str:
    """The `source` of a worker's events when none is configured: its app id as a URN."""
    return f"urn:streamer:{app_id}"


class EventHeaders:
    """The CloudEvents headers of one type of event from one source; what never varies is built once."""

    def __init__(self, source: str, event_type: str, content_type: str) -> None:
        # Values as bytes: confluent-kafka then copies them as they are (str values cost ~0.5 us more a record).
        self._constant: list[Header] = [
            ("ce_specversion", SPEC_VERSION.encode()), ("ce_source", source.encode()),
            ("ce_type", event_type.encode()), ("content-type", content_type.encode()),
        ]

    def of(self, event_id: str, time: str, trace: list[Header]) -> list[Header]:
        """An event's headers: the constant ones, its `ce_id`, `ce_time` (RFC 3339) and its trace context
        (`trace_context.trace_headers`)."""
        return [*self._constant, ("ce_id", event_id.encode()), ("ce_time", time.encode()), *trace]


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The same source record always gives the same id."""
    return str(uuid.uuid5(DEAD_LETTER_ID_NAMESPACE, f"{topic}\x1f{partition}\x1f{offset}"))
