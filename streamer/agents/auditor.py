"""The audit agent: a micro-batch of decision events -> audit rows, one Postgres transaction per batch.

Raises AuditUnavailable while Postgres is down; the batch loop then holds its offsets and retries, so
audit lags behind decisions during an outage and catches up after it, one row per decision_id.
Records that can never become a row (not a Decision, or refused by Postgres as data) go to the
dead-letter topic instead of blocking the audit.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message
from pydantic import ValidationError

from schemas.decision import Decision
from streamer.agents.dead_letters import dead_letter
from streamer.audit.sink import AuditRow, AuditSink
from streamer.kafka.publisher import OutboundRecord, Publisher
from streamer.logging import get_logger

log = get_logger(__name__)


class AuditAgent:
    def __init__(self, sink: AuditSink, publisher: Publisher, dead_letter_topic: str) -> None:
        self._sink = sink
        self._publisher = publisher
        self._dead_letter_topic = dead_letter_topic

    def __call__(self, batch: Sequence[Message]) -> None:
        rows: list[AuditRow] = []
        by_row: dict[int, Message] = {}
        unreadable: list[OutboundRecord] = []
        for message in batch:
            try:
                row = audit_row(Decision.model_validate_json(message.value() or b""), message)
            except ValidationError as exc:
                unreadable.append(self._dead(message, "invalid_decision", str(exc.errors()[0]["msg"])))
                continue
            by_row[id(row)] = message
            rows.append(row)
        result = self._sink.write(rows)
        unreadable.extend(self._dead(by_row[id(row)], "audit_refused", why) for row, why in result.refused)
        if unreadable:
            self._publisher.publish(unreadable)
        log.info("audit_batch_written", decisions=len(rows), inserted=result.inserted, dead_letters=len(unreadable))

    def _dead(self, message: Message, reason: str, detail: str) -> OutboundRecord:
        return dead_letter(message, self._dead_letter_topic, reason, detail, "audit")


def audit_row(decision: Decision, message: Message) -> AuditRow:
    return AuditRow(
        decision_id=decision.decision_id,
        application_id=decision.application_id,
        outcome=decision.outcome.value,
        probability_of_default=decision.probability_of_default,
        model_name=decision.model.name,
        model_version=decision.model.version,
        model_sha256=decision.model.sha256,
        policy_version=decision.policy_version,
        reason_codes=[r.model_dump() for r in decision.reason_codes],
        decided_at=decision.decided_at,
        latency_ms=decision.latency_ms,
        source_topic=message.topic() or "",
        source_partition=message.partition() or 0,
        source_offset=message.offset() or 0,
    )
