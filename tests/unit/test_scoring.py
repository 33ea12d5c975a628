"""Pure scoring: applications + scores -> decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from schemas import LoanApplication, ModelRef, decision_id_for
from streamer.policy import DecisionPolicy
from streamer.scoring import Scores, decide
from streamer.synthetic import ApplicationFactory

MODEL = ModelRef(name="m", version="7", sha256="a" * 64)


def _applications(n: int) -> list[LoanApplication]:
    factory = ApplicationFactory(seed=5)
    return [LoanApplication.model_validate(factory.valid(), strict=False) for _ in range(n)]


class TestDecide:
    def test_one_decision_per_application_with_outcome_id_model_and_latency(self) -> None:
        applications = _applications(3)
        now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        received = [now - timedelta(milliseconds=ms) for ms in (5, 10, 20)]
        scores = Scores(
            np.array([0.1, 0.45, 0.8], dtype=np.float32),
            np.array([[0.2, -0.1], [0.3, 0.4], [0.5, 0.1]], dtype=np.float32),
        )
        decisions = decide(applications, received, scores, ["savings", "job"], MODEL, DecisionPolicy(), now)

        assert [d.outcome.value for d in decisions] == ["approve", "review", "decline"]
        assert [d.latency_ms for d in decisions] == [5.0, 10.0, 20.0]
        assert [d.decision_id for d in decisions] == [decision_id_for(a.application_id, "m", "7") for a in applications]
        assert decisions[0].reason_codes == []
        assert [r.feature for r in decisions[1].reason_codes] == ["job", "savings"]
        assert all(d.model == MODEL and d.policy_version == DecisionPolicy().version for d in decisions)

    def test_a_clock_behind_the_record_timestamp_gives_zero_latency_not_negative(self) -> None:
        now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
        scores = Scores(np.array([0.1], dtype=np.float32), np.zeros((1, 1), dtype=np.float32))
        [decision] = decide(_applications(1), [now + timedelta(seconds=1)], scores, ["job"], MODEL,
                            DecisionPolicy(), now)
        assert decision.latency_ms == 0.0
