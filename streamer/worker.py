"""The worker's two agents, wired to Kafka, the model and Postgres, as one Faust service.

Faust runs the app (CLI, web server, lifecycle, signals); the hot path runs in two batch loops on
librdkafka consumers, because Faust's per-event stream machinery tops out near 4-5k events/s here
(see bench/README.md). Each loop is a thread; the service watches them and stops the worker if one dies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mode

from streamer import metrics
from streamer.agents.auditor import AuditAgent
from streamer.agents.scorer import ModelSlot, ScoringAgent, ScoringTopics
from streamer.audit.sink import AuditSink
from streamer.config import Settings
from streamer.kafka.batch_loop import BatchLoop
from streamer.kafka.clients import consumer_config, producer_config
from streamer.kafka.publisher import Publisher
from streamer.kafka.topics import ensure_topics
from streamer.logging import get_logger
from streamer.model import OnnxScorer
from streamer.policy import DecisionPolicy
from streamer.registry import champion

log = get_logger(__name__)


def load_champion(settings: Settings) -> OnnxScorer:
    entry = champion(settings.model_dir)
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    metrics.MODEL_INFO.labels(entry.name, entry.version, entry.sha256).set(1)
    log.info("model_loaded", model=entry.name, version=entry.version, sha256=entry.sha256)
    return scorer


class PipelineService(mode.Service):
    """Starts the scoring and audit loops after the app is up; stops them before it goes down."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.loops: list[BatchLoop] = []
        self.model: ModelSlot | None = None

    async def on_start(self) -> None:
        s = self.settings
        await asyncio.to_thread(ensure_topics, s, [s.input_topic, s.decision_topic, s.dlq_topic])
        self.model = ModelSlot(await asyncio.to_thread(load_champion, s))
        self.loops = [self._scoring_loop(self.model), self._audit_loop()]
        for loop in self.loops:
            loop.start()

    async def on_stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(loop.stop) for loop in self.loops))

    @mode.Service.timer(1.0)
    async def _watch_loops(self) -> None:
        dead = [loop.name for loop in self.loops if not loop.is_alive()]
        if dead and not self.should_stop:
            log.error("batch_loop_died", loops=dead)
            await self.crash(RuntimeError(f"batch loops died: {dead}"))

    def _scoring_loop(self, model: ModelSlot) -> BatchLoop:
        s = self.settings
        agent = ScoringAgent(
            model, DecisionPolicy(), Publisher(producer_config(s)),
            ScoringTopics(decisions=s.decision_topic, dead_letters=s.dlq_topic), s.max_event_bytes,
        )
        return BatchLoop(
            "scorer", consumer_config(s, s.scorer_group()), [s.input_topic], agent,
            max_batch=s.batch_max_events, max_wait_s=s.batch_max_wait_ms / 1000,
            on_failure=lambda _: metrics.BATCH_FAILURES.labels("scorer").inc(),
        )

    def _audit_loop(self) -> BatchLoop:
        s = self.settings
        sink = AuditSink(s.database_url.get_secret_value())
        agent = AuditAgent(sink, Publisher(producer_config(s)), s.dlq_topic)
        return BatchLoop(
            "audit", consumer_config(s, s.audit_group()), [s.decision_topic], agent,
            max_batch=s.audit_batch_max_rows, max_wait_s=s.batch_max_wait_ms / 1000,
            max_backoff_s=s.audit_retry_max_s,
            on_failure=lambda _: metrics.BATCH_FAILURES.labels("audit").inc(),
        )
