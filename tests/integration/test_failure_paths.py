"""The two failure paths the README promises, on the real broker: an application the model cannot score is
dead-lettered as `scoring_error` while the rest of its batch is decided, and a batch whose work fails is
handed over again, in order, and never committed until it succeeds."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
from confluent_kafka import Message, Producer

from schemas.application_fast import Application
from streamer.core.decisions import Scores
from streamer.core.policy import DecisionPolicy
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot
from streamer.runtime.batch_loop import BatchLoop
from streamer.runtime.clients import consumer_config, producer_config
from streamer.runtime.publisher import Publisher
from streamer.runtime.topics import ensure_topics
from streamer.stages.scoring import ScoringStage, ScoringTopics
from tests.conftest import REPO, Isolated
from tests.integration.helpers import body, committed, eventually, header_bytes, wait_until_consumed

pytestmark = pytest.mark.integration

APPLICATIONS = 24
POISONED_AT = (5, 17)  # positions, in publishing order, of the applications the model fails on
ORIGINAL_HEADER: tuple[str, str | bytes | None] = (
    "traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)


class _ModelWrapper(OnnxScorer):
    """The real champion model, with a fault of our choosing for some application ids.

    The session stays the real scorer's, so OnnxScorer.__init__ is not called again.
    """

    def __init__(self, real: OnnxScorer, poisoned: set[str]) -> None:
        self._real = real
        self.poisoned = poisoned
        self.ref, self.inputs, self.feature_names = real.ref, real.inputs, real.feature_names


class ModelFailingOn(_ModelWrapper):
    """Raises on any batch holding a poisoned application, as onnxruntime does on an input it cannot run."""

    def score(self, applications: Sequence[Application]) -> Scores:
        hit = sorted(a.application_id for a in applications if a.application_id in self.poisoned)
        if hit:
            raise RuntimeError(f"the model cannot score {hit}")
        return self._real.score(applications)


class ModelWithoutProbabilityFor(_ModelWrapper):
    """Scores every batch, but gives NaN as the probability of default of each poisoned application."""

    def score(self, applications: Sequence[Application]) -> Scores:
        scores = self._real.score(applications)
        probability = scores.probability_of_default.copy()
        for row, application in enumerate(applications):
            if application.application_id in self.poisoned:
                probability[row] = np.nan
        return Scores(probability, scores.contributions)


@dataclass(frozen=True)
class InputBatch:
    """Application records as a consumer hands them over, and the ids of those the model must fail on."""

    messages: list[Message]
    poisoned: set[str]

    def by_key(self) -> dict[bytes, Message]:
        return {m.key() or b"": m for m in self.messages}


@pytest.fixture(scope="module")
def real_model() -> OnnxScorer:
    entry = champion(REPO / "onnx_models")
    return OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)


@pytest.fixture
def input_batch(isolated: Isolated) -> InputBatch:
    """Valid applications on the input topic, two of them poisoned and carrying a producer's own header."""
    s = isolated.settings
    ensure_topics(s, [s.input_topic, s.decision_topic, s.dlq_topic])
    payloads = list(ApplicationFactory(seed=23).mixed(APPLICATIONS, invalid_every=0))
    poisoned = {payloads[i].key.decode() for i in POISONED_AT}
    producer = Producer(producer_config(s))
    for p in payloads:
        headers = [ORIGINAL_HEADER] if p.key.decode() in poisoned else None
        producer.produce(s.input_topic, p.value, p.key, headers=headers)
    assert producer.flush(30) == 0, "applications not acknowledged within 30 s"
    reader = TopicReader(s, s.input_topic)
    try:
        assert reader.read_until(lambda records: len(records) >= APPLICATIONS, 30), "applications not readable"
    finally:
        reader.close()
    return InputBatch(reader.records, poisoned)


@pytest.fixture
def publisher(isolated: Isolated) -> Iterator[Publisher]:
    decisions_publisher = Publisher(producer_config(isolated.settings))
    yield decisions_publisher
    decisions_publisher.close()


def _scoring_stage(isolated: Isolated, model: OnnxScorer, publisher: Publisher) -> ScoringStage:
    """As streamer/app/pipeline.py builds it, with `model` in the slot."""
    s = isolated.settings
    return ScoringStage(
        ModelSlot(model), DecisionPolicy(), publisher,
        ScoringTopics(decisions=s.decision_topic, dead_letters=s.dlq_topic), s.max_event_bytes,
        s.cloud_event_source(),
    )


def _read_topic(isolated: Isolated, topic: str, expected: int) -> list[Message]:
    """Every record of `topic`: waits for `expected` of them, then reads once more to catch any extra."""
    reader = TopicReader(isolated.settings, topic)
    try:
        reader.read_until(lambda records: len(records) >= expected, 30)
        reader.read_more(0.5)
        return reader.records
    finally:
        reader.close()


def _assert_decided_except_poisoned_which_are_dead_lettered(isolated: Isolated, batch: InputBatch) -> None:
    s = isolated.settings
    others = [(m.key() or b"").decode() for m in batch.messages if (m.key() or b"").decode() not in batch.poisoned]
    decisions = _read_topic(isolated, s.decision_topic, len(others))
    dead_letters = _read_topic(isolated, s.dlq_topic, len(batch.poisoned))

    assert Counter(body(m)["application_id"] for m in decisions) == Counter(others)  # each exactly once
    assert all(m.key() == str(body(m)["application_id"]).encode() for m in decisions)
    assert sorted((m.key() or b"").decode() for m in dead_letters) == sorted(batch.poisoned)
    sources = batch.by_key()
    for letter in dead_letters:
        source = sources[letter.key() or b""]
        headers = header_bytes(letter)
        assert letter.value() == source.value()  # the original bytes
        assert headers[ORIGINAL_HEADER[0]] == ORIGINAL_HEADER[1]
        assert headers["dlq.reason"] == b"scoring_error"
        assert headers["dlq.stage"] == b"scoring"
        assert headers["dlq.error"]
        assert (headers["dlq.source.topic"], headers["dlq.source.partition"], headers["dlq.source.offset"]) == (
            s.input_topic.encode(), str(source.partition()).encode(), str(source.offset()).encode()
        )


class TestScoringStage:
    def test_a_batch_the_model_cannot_score_is_split_and_only_the_failing_records_are_dead_lettered(
        self, isolated: Isolated, real_model: OnnxScorer, input_batch: InputBatch, publisher: Publisher
    ) -> None:
        stage = _scoring_stage(isolated, ModelFailingOn(real_model, input_batch.poisoned), publisher)

        pending = stage(input_batch.messages)

        assert pending.wait(30), "the decisions and dead letters were not acknowledged within 30 s"
        assert pending.failure() is None
        _assert_decided_except_poisoned_which_are_dead_lettered(isolated, input_batch)

    def test_an_application_the_model_gives_no_probability_is_dead_lettered_and_the_rest_decided(
        self, isolated: Isolated, real_model: OnnxScorer, input_batch: InputBatch, publisher: Publisher
    ) -> None:
        stage = _scoring_stage(isolated, ModelWithoutProbabilityFor(real_model, input_batch.poisoned), publisher)

        pending = stage(input_batch.messages)

        assert pending.wait(30), "the decisions and dead letters were not acknowledged within 30 s"
        assert pending.failure() is None
        _assert_decided_except_poisoned_which_are_dead_lettered(isolated, input_batch)


class Handed(NamedTuple):
    """A record as the batch loop handed it to the handler."""

    partition: int
    offset: int
    value: bytes


class HandlerFailing(Exception):
    """The failure the flaky handler raises."""


class FlakyHandler:
    """Raises on its first `failures` calls for the first batch it is given, then returns None (work done).

    On its last failing call it holds until the test has looked at the committed offsets, so they are read
    while the batch is still failing. Every other batch succeeds at once.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[Handed]] = []
        self.raised_at: list[int] = []  # indices into calls
        self.failing: list[Handed] = []
        self.holding = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: Sequence[Message]) -> None:
        records = [Handed(m.partition() or 0, m.offset() or 0, m.value() or b"") for m in batch]
        self.calls.append(records)
        self.failing = self.failing or records
        if records != self.failing or len(self.raised_at) == self.failures:
            return
        self.raised_at.append(len(self.calls) - 1)
        if len(self.raised_at) == self.failures:
            self.holding.set()
            self.release.wait(60)
        raise HandlerFailing(f"attempt {len(self.raised_at)} of {self.failures} failing")

    def succeeded(self) -> list[list[Handed]]:
        """The calls that returned, in order."""
        return [call for i, call in enumerate(self.calls) if i not in self.raised_at]

    def skipped_ahead(self) -> bool:
        """Whether records past the failing batch, in its partitions, were handed over before it succeeded."""
        last = {r.partition: r.offset for r in sorted(self.failing)}
        ok = [i for i, call in enumerate(self.calls) if call == self.failing and i not in self.raised_at]
        before = self.calls[: ok[0]] if ok else self.calls
        return any(r.offset > last.get(r.partition, r.offset) for call in before for r in call)


def _spans(calls: Sequence[Sequence[Handed]]) -> list[str]:
    """Calls in brief, for failure messages: each as partition:first-last offsets, e.g. ["p0:0-9 p1:0-4"]."""
    return [" ".join(f"p{p}:{rs[0].offset}-{rs[-1].offset}" for p, rs in sorted(_by_partition(c).items()))
            for c in calls]


def _by_partition(records: Sequence[Handed]) -> dict[int, list[Handed]]:
    partitions: dict[int, list[Handed]] = {}
    for record in records:
        partitions.setdefault(record.partition, []).append(record)
    return partitions


class TestBatchLoop:
    def test_a_batch_whose_handler_raises_is_retried_never_acked(self, isolated: Isolated) -> None:
        s = isolated.settings
        ensure_topics(s, [s.input_topic])
        assert publish(s, ApplicationFactory(seed=29).mixed(60, invalid_every=0)) == 60
        published = _read_topic(isolated, s.input_topic, 60)
        handler, failures = FlakyHandler(failures=3), list[Exception]()
        loop = BatchLoop(
            "flaky", consumer_config(s, s.scorer_group()), [s.input_topic], handler, max_batch=10, max_wait_s=0.05,
            max_backoff_s=0.2, on_failure=failures.append, check_positions=s.broker_profile == "tansu",
        )
        loop.start()
        try:
            eventually(lambda: handler.holding.is_set() or handler.skipped_ahead(), 60,
                       f"{handler.failures} failing calls for one batch")
            assert not handler.skipped_ahead(), (
                f"records past the failing batch were handed over before it succeeded: {_spans(handler.calls)}"
            )
            first = {p: min(r.offset for r in records) for p, records in _by_partition(handler.failing).items()}
            stored = committed(s, s.scorer_group(), [(s.input_topic, p) for p in first])
            assert all(stored[(s.input_topic, p)] <= offset for p, offset in first.items()), (
                f"committed {stored} while the batch starting at {first} (partition: offset) kept failing"
            )
            handler.release.set()
            wait_until_consumed(s, s.scorer_group(), published, timeout_s=60)
        finally:
            handler.release.set()
            loop.stop()

        assert loop.crashed is None
        assert [call for call in handler.calls if call == handler.failing] == [handler.failing] * 4, (
            f"the failing batch {_spans([handler.failing])} was not handed over 4 times: {_spans(handler.calls)}"
        )
        assert [type(f) for f in failures] == [HandlerFailing] * 3
        assert not handler.skipped_ahead()
        # Every record was handed over and succeeded exactly once, in offset order within its partition.
        expected = [Handed(m.partition() or 0, m.offset() or 0, m.value() or b"") for m in published]
        assert _by_partition([r for call in handler.succeeded() for r in call]) == _by_partition(
            sorted(expected, key=lambda r: (r.partition, r.offset))
        )
