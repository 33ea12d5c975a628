"""The scoring stage: a micro-batch of application records -> decision events and dead letters.

Only decodes, calls the pure validation/scoring/policy code, and hands records to the publisher.
Returns when every output record is acknowledged by the broker; its caller then commits offsets.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from schemas.application_fast import Application
from streamer import metrics
from streamer.core.decisions import DecisionEncoder, EncodedDecision
from streamer.core.policy import DecisionPolicy
from streamer.core.records import HEADER, RECORD, KeyRing, RecordEncoder
from streamer.core.validation import Rejection, parse_application
from streamer.logging import get_logger
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.reload import ModelSlot
from streamer.runtime.publisher import OutboundRecord, PendingDelivery, Publisher
from streamer.runtime.transactions import Decided
from streamer.stages.dead_letters import dead_letter

log = get_logger(__name__)


@dataclass(frozen=True)
class ScoringTopics:
    decisions: str
    dead_letters: str


class ScoringStage:
    def __init__(
        self,
        model: ModelSlot,
        policy: DecisionPolicy,
        publisher: Publisher | None,
        topics: ScoringTopics,
        max_event_bytes: int,
        record_keys: KeyRing | None = None,
    ) -> None:
        self._model = model
        self._record_keys = record_keys  # None: decisions carry no record
        self._policy = policy
        self._publisher = publisher
        self._topics = topics
        self._max_event_bytes = max_event_bytes
        self._encoders: dict[int, DecisionEncoder] = {}
        self._record_encoders: dict[tuple[str, ...], RecordEncoder] = {}

    def __call__(self, batch: Sequence[Message]) -> PendingDelivery:
        """at_least_once: score the batch and hand its decisions and dead letters to the producer; the
        acknowledgements arrive while the next batch is scored (the batch loop commits once they are all in)."""
        if self._publisher is None:
            raise RuntimeError("at_least_once scoring needs a publisher")
        decided = self.decide(batch)
        return self._publisher.publish_async(decided.records, on_success=decided.on_success)

    def decide(self, batch: Sequence[Message]) -> Decided:
        """The batch's decisions and dead letters, not yet published (exactly_once: the transactional loop
        publishes them in its transaction), and what to count once they are."""
        started = time.perf_counter()
        valid: list[tuple[Message, Application]] = []
        rejected: list[tuple[Message, Rejection, str]] = []
        for message in batch:
            parsed = parse_application(message.value(), self._max_event_bytes)
            if isinstance(parsed, Rejection):
                rejected.append((message, parsed, "validation"))
            else:
                valid.append((message, parsed))
        scorer = self._model.current  # one model for the whole batch, even if a swap lands meanwhile
        decisions, failed = self._decide(scorer, valid)
        rejected.extend((m, r, "scoring") for m, r in failed)
        outbound = [dead_letter(m, self._topics.dead_letters, r.reason, r.detail, stage) for m, r, stage in rejected]
        outbound.extend(self._decision_records(scorer, decisions, valid))
        rejections = [r for _, r, _ in rejected]
        return Decided(outbound, lambda: self._count(batch, decisions, rejections, scorer, started))

    def _decision_records(
        self, scorer: OnnxScorer, decisions: list[EncodedDecision], valid: list[tuple[Message, Application]]
    ) -> list[OutboundRecord]:
        """The decision events, each with its record sealed in one header (streamer/core/records.py) when a key
        is configured: consumers of the topic see Decision v1 and an opaque blob, no application data."""
        topic = self._topics.decisions
        if self._record_keys is None or not decisions:
            return [OutboundRecord(topic, d.application_id.encode(), d.value) for d in decisions]
        encoder = self._record_encoders.get(scorer.feature_names)
        if encoder is None:
            encoder = RecordEncoder(scorer.feature_names)
            self._record_encoders = {scorer.feature_names: encoder}
        applications = {a.application_id: a for _, a in valid}
        envelopes = self._record_keys.sealer(RECORD).seal_many(
            [encoder.document(applications[d.application_id]) for d in decisions],
            [bytes.fromhex(d.decision_id.replace("-", "")) for d in decisions],
        )
        return [OutboundRecord(topic, d.application_id.encode(), d.value, [(HEADER, envelope)])
                for d, envelope in zip(decisions, envelopes, strict=True)]

    def _decide(
        self, scorer: OnnxScorer, valid: list[tuple[Message, Application]]
    ) -> tuple[list[EncodedDecision], list[tuple[Message, Rejection]]]:
        if not valid:
            return [], []
        try:
            decisions = self._score(scorer, valid)
        except Exception as exc:  # a batch the model cannot score: find the records that break it
            log.warning("batch_scoring_failed", error=repr(exc), size=len(valid))
            decisions = []
            for item in valid:
                try:
                    decisions.extend(self._score(scorer, [item]))
                except Exception as row_exc:
                    log.warning("record_scoring_failed", error=repr(row_exc))
        scored = {d.application_id for d in decisions}
        failed = [(m, Rejection("scoring_error", "the model gave no probability for this application"))
                  for m, a in valid if a.application_id not in scored]
        return decisions, failed

    def _score(self, scorer: OnnxScorer, items: list[tuple[Message, Application]]) -> list[EncodedDecision]:
        applications = [a for _, a in items]
        started = time.perf_counter()
        scores = scorer.score(applications)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        received = [_received_ms(m, a) for m, a in items]
        return self._encoder(scorer).encode(applications, received, scores, datetime.now(UTC))

    def _encoder(self, scorer: OnnxScorer) -> DecisionEncoder:
        encoder = self._encoders.get(id(scorer))
        if encoder is None or encoder.model is not scorer.ref:
            encoder = DecisionEncoder(scorer.ref, scorer.feature_names, self._policy)
            self._encoders = {id(scorer): encoder}  # the previous model's encoder is no longer needed
        return encoder

    def _count(
        self,
        batch: Sequence[Message],
        decisions: list[EncodedDecision],
        rejections: list[Rejection],
        scorer: OnnxScorer,
        started: float,
    ) -> None:
        """Counted once the broker acknowledged the whole batch, so a retried batch is not counted twice."""
        metrics.APPLICATIONS_CONSUMED.inc(len(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        for rejection in rejections:
            metrics.DEAD_LETTERS.labels(rejection.reason).inc()
        for outcome, count in Counter(d.outcome for d in decisions).items():
            metrics.DECISIONS.labels(outcome.value).inc(count)
        metrics.observe_many(metrics.END_TO_END_SECONDS, [d.latency_ms / 1000.0 for d in decisions])
        metrics.LAST_PROCESSED.set_to_current_time()
        log.info(
            "batch_scored", records=len(batch), decisions=len(decisions), dead_letters=len(rejections),
            model_version=scorer.ref.version, seconds=round(time.perf_counter() - started, 4),
        )


def _received_ms(message: Message, application: Application) -> float:
    kind, ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return application.submitted_at.timestamp() * 1000.0
    return float(ms)
