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
from typing import Protocol

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from schemas.application_fast import Application
from streamer import metrics
from streamer.core.cloud_events import DECISION_TYPE, JSON, EventHeaders
from streamer.core.decisions import DecisionEncoder, EncodedDecision
from streamer.core.policy import DecisionPolicy
from streamer.core.records import HEADER, RECORD, KeyRing, RecordEncoder
from streamer.core.trace_context import trace_headers
from streamer.core.validation import Rejection, parse_application
from streamer.logging import get_logger
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.reload import ModelSlot
from streamer.runtime.publisher import OutboundRecord, PendingDelivery, Publisher
from streamer.runtime.transactions import Decided
from streamer.stages.dead_letters import dead_letter, dead_letter_events

log = get_logger(__name__)


@dataclass(frozen=True)
class ScoringTopics:
    decisions: str
    dead_letters: str


class BatchTracer(Protocol):
    """Spans of the scoring batches (`streamer.tracing`, only with STREAMER_OTEL_ENABLED)."""

    def batch_decided(self, batch: Sequence[Message], started_ns: int, decisions: int, dead_letters: int) -> None:
        """One span per batch, from `started_ns` (time.time_ns) to now, linked to its records' trace contexts."""


class ScoringStage:
    def __init__(
        self,
        model: ModelSlot,
        policy: DecisionPolicy,
        publisher: Publisher | None,
        topics: ScoringTopics,
        max_event_bytes: int,
        event_source: str,
        tracer: BatchTracer | None = None,
        record_keys: KeyRing | None = None,
    ) -> None:
        """`event_source`: the CloudEvents source of decisions and dead letters (`Settings.event_source`)."""
        self._model = model
        self._record_keys = record_keys  # None: decisions carry no record
        self._policy = policy
        self._publisher = publisher
        self._topics = topics
        self._max_event_bytes = max_event_bytes
        self._encoders: dict[int, DecisionEncoder] = {}
        self._decision_events = EventHeaders(event_source, DECISION_TYPE, JSON)
        self._dead_letter_events = dead_letter_events(event_source)
        self._tracer = tracer
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
        started_ns = time.time_ns() if self._tracer is not None else 0
        valid: list[tuple[Message, Application]] = []
        rejected: list[tuple[Message, Rejection, str]] = []
        for message in batch:
            parsed = parse_application(message.value(), self._max_event_bytes)
            if isinstance(parsed, Rejection):
                rejected.append((message, parsed, "validation"))
            else:
                valid.append((message, parsed))
        scorer = self._model.current  # one model for the whole batch, even if a swap lands meanwhile
        decided, failed = self._decide(scorer, valid)
        rejected.extend((m, r, "scoring") for m, r in failed)
        events, topic = self._dead_letter_events, self._topics.dead_letters
        outbound = [dead_letter(m, topic, r.reason, r.detail, stage, events) for m, r, stage in rejected]
        outbound.extend(self._decision_records(scorer, decided, valid))
        decisions = [d for _, d in decided]
        rejections = [r for _, r, _ in rejected]
        if self._tracer is not None:
            self._tracer.batch_decided(batch, started_ns, len(decisions), len(rejections))
        return Decided(outbound, lambda: self._count(batch, decisions, rejections, scorer, started))

    def _decision_records(
        self, scorer: OnnxScorer, decided: list[tuple[Message, EncodedDecision]],
        valid: list[tuple[Message, Application]],
    ) -> list[OutboundRecord]:
        """The decision events as CloudEvents with their application's trace context and, when a key is
        configured, their record sealed in one header (streamer/core/records.py): consumers of the topic see
        Decision v1 and an opaque blob, no application data."""
        topic, headers_of = self._topics.decisions, self._decision_events.of
        # The application's trace context goes on with its decision (a record without headers costs ~50 ns).
        headers = [headers_of(d.decision_id, d.decided_at, trace_headers(m.headers())) for m, d in decided]
        if self._record_keys is not None and decided:
            encoder = self._record_encoders.get(scorer.feature_names)
            if encoder is None:
                encoder = RecordEncoder(scorer.feature_names)
                self._record_encoders = {scorer.feature_names: encoder}
            # By record, not by application id: two applications with one id in a batch keep their own inputs.
            application_of = {id(m): a for m, a in valid}
            envelopes = self._record_keys.sealer(RECORD).seal_many(
                [encoder.document(application_of[id(m)]) for m, _ in decided],
                [bytes.fromhex(d.decision_id.replace("-", "")) for _, d in decided],
            )
            for event_headers, envelope in zip(headers, envelopes, strict=True):
                event_headers.append((HEADER, envelope))
        return [OutboundRecord(topic, d.application_id.encode(), d.value, h)
                for (_, d), h in zip(decided, headers, strict=True)]

    def _decide(
        self, scorer: OnnxScorer, valid: list[tuple[Message, Application]]
    ) -> tuple[list[tuple[Message, EncodedDecision]], list[tuple[Message, Rejection]]]:
        """Each decision with the record it decides, and the records the model gave no probability for."""
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
        scored = {id(m) for m, _ in decisions}
        failed = [(m, Rejection("scoring_error", "the model gave no probability for this application"))
                  for m, _ in valid if id(m) not in scored]
        return decisions, failed

    def _score(
        self, scorer: OnnxScorer, items: list[tuple[Message, Application]]
    ) -> list[tuple[Message, EncodedDecision]]:
        applications = [a for _, a in items]
        started = time.perf_counter()
        scores = scorer.score(applications)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        received = [_received_ms(m, a) for m, a in items]
        encoded = self._encoder(scorer).encode(applications, received, scores, datetime.now(UTC))
        return [(items[d.row][0], d) for d in encoded]

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
