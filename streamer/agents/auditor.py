"""The audit agent: a micro-batch of decision events -> audit rows, one Postgres transaction per batch.

Raises AuditUnavailable while Postgres is down; the batch loop then holds its offsets and retries, so
audit lags behind decisions during an outage and catches up after it, one row per decision_id.
Records that can never become a row (not a Decision v1, or refused by Postgres as data) go to the
dead-letter topic instead of blocking the audit.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message

from streamer import metrics
from streamer.agents.dead_letters import dead_letter
from streamer.audit.sink import AuditSink, DecisionEvent
from streamer.kafka.publisher import OutboundRecord, Publisher
from streamer.logging import get_logger

log = get_logger(__name__)


class AuditAgent:
    def __init__(self, sink: AuditSink, publisher: Publisher, dead_letter_topic: str) -> None:
        self._sink = sink
        self._publisher = publisher
        self._dead_letter_topic = dead_letter_topic

    def __call__(self, batch: Sequence[Message]) -> None:
        events: list[DecisionEvent] = []
        source: dict[int, Message] = {}
        unusable: list[OutboundRecord] = []
        for message in batch:
            value = message.value()
            if not value:
                unusable.append(self._dead(message, "invalid_decision", "the record has no value"))
                continue
            event = DecisionEvent(message.topic() or "", message.partition() or 0, message.offset() or 0, value)
            source[id(event)] = message
            events.append(event)
        result = self._sink.write(events)
        unusable.extend(self._dead(source[id(e)], "audit_refused", why) for e, why in result.refused)
        if unusable:
            self._publisher.publish(unusable)
            for record in unusable:
                reason = dict(record.headers).get("dlq.reason") or b"audit_refused"
                metrics.DEAD_LETTERS.labels(reason.decode() if isinstance(reason, bytes) else reason).inc()
        log.info("audit_batch_written", decisions=len(events), inserted=result.inserted, dead_letters=len(unusable))

    def _dead(self, message: Message, reason: str, detail: str) -> OutboundRecord:
        return dead_letter(message, self._dead_letter_topic, reason, detail, "audit")
