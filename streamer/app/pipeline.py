"""The worker's two stages, wired to Kafka, the model and Postgres, as one Faust service.

Faust runs the app (CLI, web server, lifecycle, signals); the hot path runs in two batch loops on
librdkafka consumers, because Faust's per-event stream machinery tops out near 4-5k events/s here
(see bench/README.md). Each loop is a thread; the service watches them and stops the worker if one dies.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import mode

from streamer import metrics
from streamer.app.readiness import LoopView, Readiness
from streamer.audit.consumer_offsets import stored_offsets
from streamer.audit.health import database_reachable, default_partition_rows
from streamer.audit.sink import AuditSink
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy
from streamer.core.records import KeyRing
from streamer.logging import get_logger
from streamer.model.registry import FileRegistry, ModelRegistry, RegistryUnreachable, open_registry
from streamer.model.reload import ModelSlot, ModelWatcher, load_entry, publish_model_info
from streamer.runtime.batch_loop import BatchLoop
from streamer.runtime.clients import consumer_config, producer_config, transactional_producer_config
from streamer.runtime.lag import CommittedLag, KnownEnds
from streamer.runtime.publisher import Publisher
from streamer.runtime.topics import ensure_topics, missing_topics
from streamer.runtime.transactions import TransactionalLoop
from streamer.stages.audit import AuditStage
from streamer.stages.dead_letters import refused_as_too_large
from streamer.stages.scoring import BatchTracer, ScoringStage, ScoringTopics

log = get_logger(__name__)

# While its transactions run, the audit loop looks for records and finished writes every 50 ms, not
# every 2 ms like the scorer: each wake-up takes the GIL from the scoring thread (bench/README.md).
AUDIT_BUSY_POLL_S = 0.05
# A loop turn longer than this is logged with the loop thread's stack (batch_loop_stalled), once per stall.
# Longer than any single librdkafka call the loops make (30 s at most) plus a back-off.
STALL_REPORT_S = 60.0


# How often the file registry is read: a local file, so cheap enough every second.
FILE_POLL_INTERVAL_S = 1.0


def load_champion(settings: Settings, registry: ModelRegistry) -> ModelSlot:
    """The registry's champion, verified; at start-up a model that fails verification stops the worker.

    A registry that does not answer at start-up (MLflow down) does not: the worker serves the default model
    of `model_dir` (the image's) and swaps to the champion once the registry answers.
    """
    try:
        entry = registry.champion()
    except RegistryUnreachable as exc:
        metrics.MODEL_REGISTRY_UP.set(0)
        log.warning("model_registry_unreachable_at_start", registry=registry.name, detail=str(exc),
                    fallback=str(settings.model_dir))
        entry = FileRegistry(settings.model_dir).champion()
    else:
        metrics.MODEL_REGISTRY_UP.set(1)
    scorer = load_entry(entry)
    publish_model_info(scorer)
    log.info("model_loaded", model=entry.name, version=entry.version, sha256=entry.sha256, registry=registry.name)
    return ModelSlot(scorer)


class PipelineService(mode.Service):
    """Starts the scoring and audit loops after the app is up; stops them before it goes down."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.loops: list[BatchLoop] = []
        self.model: ModelSlot | None = None
        self.watcher: ModelWatcher | None = None
        self._model_poll_s = FILE_POLL_INTERVAL_S
        self._next_model_poll = 0.0
        self.database_ok = False
        self._stall_reported: set[str] = set()
        self._decisions_publisher: Publisher | None = None
        self._audit_lag: CommittedLag | None = None
        self._audit_stage: AuditStage | None = None
        self._tracer_shutdown: Callable[[], object] | None = None
        self._record_keys: KeyRing | None = None

    async def on_start(self) -> None:
        s = self.settings
        # Three threads share the GIL (scoring loop, audit loop, Faust's event loop). With Python's default
        # 5 ms switch interval a loop waking from I/O waits up to 5 ms per hand-over, several times a batch
        # (README, "Kafka settings that matter", has the measurements).
        sys.setswitchinterval(s.gil_switch_interval_s)
        scoring, auditing = s.stages in ("all", "scoring"), s.stages in ("all", "audit")
        tracer = self._batch_tracer() if scoring else None  # first: a worker that cannot trace stops at once
        await asyncio.to_thread(self._check_topics)
        self._record_keys = s.record_key_ring()  # a bad key setting stops the worker here, quoting no key
        if self._record_keys is None:
            log.warning("decision_records_disabled",
                        detail="STREAMER_RECORD_KEYS is unset: decisions carry no record, and their audit rows none")
        if scoring:
            registry = await asyncio.to_thread(open_registry, s)
            self.model = await asyncio.to_thread(load_champion, s, registry)
            self.watcher = ModelWatcher(registry, self.model)
            self._model_poll_s = s.mlflow_poll_interval_s if registry.name == "mlflow" else FILE_POLL_INTERVAL_S
            self.loops.append(self._scoring_loop(self.model, tracer))
        else:
            metrics.unregister_scoring_gauges()
        if auditing:
            self.loops.append(self._audit_loop())
        for loop in self.loops:
            loop.start()
        if auditing:
            self._audit_lag = CommittedLag(s, s.decision_topic, s.audit_group(), self._known_decision_ends())

    def _known_decision_ends(self) -> KnownEnds:
        """Tansu reports a wrong end offset (ListOffsets answers 1), so there our own delivery reports count too:
        the audit lag is then known only where the scorer runs in the same process."""
        if self.settings.broker_profile != "tansu" or self.settings.stages != "all":
            return dict
        if self._decisions_publisher is not None:
            return self._decisions_publisher.delivered_ends
        scorer = self.loops[0]
        return scorer.delivered_ends if isinstance(scorer, TransactionalLoop) else dict

    async def on_stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(loop.stop) for loop in self.loops))
        if self._audit_stage is not None:
            await asyncio.to_thread(self._audit_stage.close)
        if self._audit_lag is not None:
            self._audit_lag.close()
        if self._tracer_shutdown is not None:
            await asyncio.to_thread(self._tracer_shutdown)  # exports the spans still queued

    def readiness(self) -> Readiness:
        """Model loaded (unless audit only), its loops alive and assigned (streamer/app/readiness.py); Postgres
        only reported."""
        return Readiness(
            model_loaded=self.model is not None or self.settings.stages == "audit",
            loops=[LoopView(loop.name, loop.is_alive(), loop.membership) for loop in self.loops],
            database_up=self.database_ok,
            now=time.monotonic(),
            # The rebalance timeout: the coordinator waits this long for members to rejoin.
            rebalance_grace_s=self.settings.max_poll_interval_ms / 1000,
        )

    def ready(self) -> bool:
        return self.readiness().ready

    def _check_topics(self) -> None:
        """Create the missing topics when asked to; otherwise say which are missing and carry on: consuming
        and publishing wait for them (records are neither lost nor skipped), and the worker is not ready."""
        s = self.settings
        topics = [s.input_topic, s.decision_topic, s.dlq_topic]
        if s.create_topics:
            ensure_topics(s, topics)
        elif missing := missing_topics(s, topics):
            log.error("topics_missing", topics=missing,
                      hint="create them (k8s/base/kafka/topics.yaml), or set STREAMER_CREATE_TOPICS=true on a "
                           "development broker")

    @mode.Service.timer(15.0)
    async def _keep_topics(self) -> None:
        """Tansu, with create_topics on: a Tansu that restarted has lost its log (kept in memory), and our
        topics with it. On Kafka a missing topic is an operator's doing, not to be undone with default settings."""
        s = self.settings
        if s.broker_profile != "tansu" or not s.create_topics:
            return
        try:
            created = await asyncio.to_thread(ensure_topics, s, [s.input_topic, s.decision_topic, s.dlq_topic])
        except Exception as exc:  # the broker may be down right now; the next tick tries again
            log.warning("topic_check_failed", error=repr(exc))
            return
        if created:
            log.warning("topics_recreated", topics=created)

    @mode.Service.timer(2.0)
    async def _probe_database(self) -> None:
        """For the streamer_audit_database_up gauge (and its alert); not a readiness gate."""
        self.database_ok = await asyncio.to_thread(database_reachable, self.settings.database_url.get_secret_value())
        metrics.AUDIT_DATABASE_UP.set(1 if self.database_ok else 0)

    @mode.Service.timer(60.0, exec_first=True)
    async def _count_default_partition_rows(self) -> None:
        """For the streamer_audit_default_partition_rows gauge and its alert: rows no monthly partition covers."""
        try:
            rows = await asyncio.to_thread(default_partition_rows, self.settings.database_url.get_secret_value())
        except Exception as exc:  # a metric must never take the worker down (the database may be down)
            log.warning("audit_default_partition_unknown", error=repr(exc))
            return
        metrics.AUDIT_DEFAULT_PARTITION_ROWS.set(rows)

    @mode.Service.timer(5.0)
    async def _measure_audit_lag(self) -> None:
        if self._audit_lag is None:
            return
        try:
            metrics.AUDIT_LAG_EVENTS.set(await asyncio.to_thread(self._audit_lag.measure))
        except Exception as exc:  # a metric must never take the worker down
            log.warning("audit_lag_unavailable", error=repr(exc))

    @mode.Service.timer(1.0)
    async def _watch_loops(self) -> None:
        dead = [loop.name for loop in self.loops if not loop.is_alive()]
        if dead and not self.should_stop:
            log.error("batch_loop_died", loops=dead)
            await self.crash(RuntimeError(f"batch loops died: {dead}"))
        for loop in self.loops:
            # Once per stall: where the loop's thread is, so a hang leaves evidence in the log.
            stalled = loop.stalled_for() > STALL_REPORT_S
            if stalled and loop.name not in self._stall_reported:
                log.warning("batch_loop_stalled", loop=loop.name, seconds=round(loop.stalled_for()),
                            stack=loop.where()[-8:])
                self._stall_reported.add(loop.name)
            elif not stalled:
                self._stall_reported.discard(loop.name)

    @mode.Service.timer(1.0)
    async def _watch_model(self) -> None:
        """Off the hot path, in a thread; a slow registry only delays the next poll (its requests time out)."""
        if self.watcher is None or time.monotonic() < self._next_model_poll:
            return
        await asyncio.to_thread(self.watcher.check)
        self._next_model_poll = time.monotonic() + self._model_poll_s

    def _batch_tracer(self) -> BatchTracer | None:
        """Spans of the scoring batches, if asked for; off, OpenTelemetry is not imported at all."""
        if not self.settings.otel_enabled:
            return None
        from streamer.tracing import batch_tracer  # noqa: PLC0415 (the otel extra: only when tracing is on)

        tracer, provider = batch_tracer(self.settings)
        self._tracer_shutdown = provider.shutdown
        log.info("tracing_enabled", exporter="otlp")
        return tracer

    def _scoring_loop(self, model: ModelSlot, tracer: BatchTracer | None = None) -> BatchLoop:
        s = self.settings
        topics = ScoringTopics(decisions=s.decision_topic, dead_letters=s.dlq_topic)
        source = s.cloud_event_source()
        if s.processing_guarantee == "exactly_once":
            if s.broker_profile == "tansu":
                log.warning("read_committed_unsupported", broker="tansu",
                            detail="Tansu shows aborted transactions to read_committed consumers")
            stage = ScoringStage(model, DecisionPolicy(), None, topics, s.max_event_bytes, source, tracer,
                                 self._record_keys)
            return TransactionalLoop(
                "scorer", consumer_config(s, s.scorer_group()), transactional_producer_config(s), [s.input_topic],
                stage.decide, max_batch=s.batch_max_events, max_wait_s=s.batch_max_wait_ms / 1000,
                commit_interval_s=s.commit_interval_ms / 1000, too_large=refused_as_too_large,
                on_failure=lambda _: metrics.BATCH_FAILURES.labels("scorer").inc(),
                check_positions=s.broker_profile == "tansu",
            )
        self._decisions_publisher = Publisher(producer_config(s), too_large=refused_as_too_large)
        stage = ScoringStage(model, DecisionPolicy(), self._decisions_publisher, topics, s.max_event_bytes, source,
                             tracer, self._record_keys)
        return BatchLoop(
            "scorer", consumer_config(s, s.scorer_group()), [s.input_topic], stage,
            max_batch=s.batch_max_events, max_wait_s=s.batch_max_wait_ms / 1000,
            on_failure=lambda _: metrics.BATCH_FAILURES.labels("scorer").inc(),
            check_positions=s.broker_profile == "tansu",
        )

    def _audit_loop(self) -> BatchLoop:
        s = self.settings
        url, group, keys = s.database_url.get_secret_value(), s.audit_group(), self._record_keys
        stage = AuditStage(lambda: AuditSink(url, write_timeout_s=s.audit_write_timeout_s, consumer_group=group,
                                             record_keys=keys),
                           Publisher(producer_config(s), too_large=refused_as_too_large), s.dlq_topic,
                           s.audit_writers, event_source=s.cloud_event_source(), read_records=keys is not None)
        self._audit_stage = stage
        # The audit never skips decisions the broker no longer has (README, "Running in production"): a
        # committed offset out of range stops its partition, logged and counted. Not on Tansu, which loses its
        # log on a restart by design: its lost-log check starts those partitions over, with a seek that a
        # partition stopped by auto.offset.reset=error refuses (confluentinc/librdkafka#2961).
        never_skip = s.broker_profile != "tansu"
        config = consumer_config(s, group, s.audit_fetch_max_wait_ms,
                                 offset_reset="error" if never_skip else "earliest")
        return BatchLoop(
            "audit", config, [s.decision_topic], stage,
            max_batch=s.audit_batch_max_rows, max_wait_s=s.batch_max_wait_ms / 1000,
            max_backoff_s=s.audit_retry_max_s, busy_poll_s=AUDIT_BUSY_POLL_S,
            on_failure=lambda _: metrics.BATCH_FAILURES.labels("audit").inc(),
            check_positions=s.broker_profile == "tansu",
            on_out_of_range=_count_audit_gap if never_skip else None,
            give_up=stage.give_up, commit_positions=True, max_attempts=s.audit_max_batch_attempts,
            # Exactly once: resume from the offsets stored with the rows (streamer/stages/audit.py).
            resume_from=lambda partitions: stored_offsets(url, group, partitions),
        )


def _count_audit_gap(topic: str, partition: int) -> None:
    metrics.AUDIT_OFFSET_OUT_OF_RANGE.labels(topic, str(partition)).inc()
