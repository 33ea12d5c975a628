"""The scoring agent: a micro-batch of application records -> decision events and dead letters.

Only decodes, calls the pure validation/scoring/policy code, and hands records to the publisher.
Returns when every output record is acknowledged by the broker; its caller then commits offsets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from schemas.application import LoanApplication
from schemas.decision import Decision
from streamer import metrics
from streamer.agents.dead_letters import dead_letter
from streamer.kafka.publisher import OutboundRecord, Publisher
from streamer.logging import get_logger
from streamer.model import OnnxScorer
from streamer.policy import DecisionPolicy
from streamer.reload import ModelSlot
from streamer.scoring import decide
from streamer.validation import Rejection, parse_application

log = get_logger(__name__)


@dataclass(frozen=True)
class ScoringTopics:
    decisions: str
    dead_letters: str


class ScoringAgent:
    def __init__(
        self,
        model: ModelSlot,
        policy: DecisionPolicy,
        publisher: Publisher,
        topics: ScoringTopics,
        max_event_bytes: int,
    ) -> None:
        self._model = model
        self._policy = policy
        self._publisher = publisher
        self._topics = topics
        self._max_event_bytes = max_event_bytes

    def __call__(self, batch: Sequence[Message]) -> None:
        started = time.perf_counter()
        valid: list[tuple[Message, LoanApplication]] = []
        rejected: list[tuple[Message, Rejection, str]] = []
        for message in batch:
            parsed = parse_application(message.value(), self._max_event_bytes)
            if isinstance(parsed, Rejection):
                rejected.append((message, parsed, "validation"))
            else:
                valid.append((message, parsed))
        decisions, failed = self._decide(valid)
        rejected.extend((m, r, "scoring") for m, r in failed)
        outbound = [self._dead(m, r, stage) for m, r, stage in rejected]
        outbound.extend(self._decision_record(d) for d in decisions)
        self._publisher.publish(outbound)
        self._count(batch, decisions, [r for _, r, _ in rejected], started)

    def _decide(
        self, valid: list[tuple[Message, LoanApplication]]
    ) -> tuple[list[Decision], list[tuple[Message, Rejection]]]:
        if not valid:
            return [], []
        scorer = self._model.current  # one model for the whole batch, even if a swap lands meanwhile
        try:
            return self._score(scorer, valid), []
        except Exception as exc:  # a batch the model cannot score: find the records that break it
            log.warning("batch_scoring_failed", error=repr(exc), size=len(valid))
        decisions, failed = [], []
        for item in valid:
            try:
                decisions.extend(self._score(scorer, [item]))
            except Exception as exc:
                failed.append((item[0], Rejection("scoring_error", f"model could not score: {exc!r}")))
        return decisions, failed

    def _score(self, scorer: OnnxScorer, items: list[tuple[Message, LoanApplication]]) -> list[Decision]:
        applications = [a for _, a in items]
        started = time.perf_counter()
        scores = scorer.score(applications)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        received = [_received_at(m, a) for m, a in items]
        return decide(applications, received, scores, scorer.feature_names, scorer.ref, self._policy,
                      datetime.now(UTC))

    def _decision_record(self, decision: Decision) -> OutboundRecord:
        return OutboundRecord(
            topic=self._topics.decisions,
            key=decision.application_id.encode(),
            value=decision.model_dump_json().encode(),
        )

    def _dead(self, message: Message, rejection: Rejection, stage: str) -> OutboundRecord:
        return dead_letter(message, self._topics.dead_letters, rejection.reason, rejection.detail, stage)

    def _count(
        self, batch: Sequence[Message], decisions: list[Decision], rejections: list[Rejection], started: float
    ) -> None:
        """Counted only after the broker acknowledged the batch, so a retried batch is not counted twice."""
        metrics.APPLICATIONS_CONSUMED.inc(len(batch))
        for rejection in rejections:
            metrics.DEAD_LETTERS.labels(rejection.reason).inc()
        metrics.BATCH_SIZE.observe(len(batch))
        for decision in decisions:
            metrics.DECISIONS.labels(decision.outcome.value).inc()
            metrics.END_TO_END_SECONDS.observe(decision.latency_ms / 1000.0)
        metrics.LAST_PROCESSED.set_to_current_time()
        log.info(
            "batch_scored", records=len(batch), decisions=len(decisions),
            dead_letters=len(rejections), model_version=self._model.current.ref.version,
            seconds=round(time.perf_counter() - started, 4),
        )


def _received_at(message: Message, application: LoanApplication) -> datetime:
    kind, ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return application.submitted_at
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)
