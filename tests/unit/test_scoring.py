"""Pure scoring: applications + scores -> Decision v1 JSON, pinned to the schemas.Decision model."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from schemas import Decision, LoanApplication, ModelRef, Outcome, decision_id_for
from streamer.core.decisions import DecisionEncoder, Scores
from streamer.core.policy import DecisionPolicy, adverse_reasons
from streamer.local.synthetic import ApplicationFactory
from tests.unit.test_schemas import PINNED_DECISION_IDS

MODEL = ModelRef(name="m", version="7", sha256="a" * 64)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW_MS = NOW.timestamp() * 1000


def _applications(n: int) -> list[LoanApplication]:
    factory = ApplicationFactory(seed=5)
    return [LoanApplication.model_validate(factory.valid(), strict=False) for _ in range(n)]


class TestDecisionEncoder:
    def test_each_decision_is_a_valid_decision_v1_with_outcome_id_model_and_latency(self) -> None:
        applications = _applications(3)
        scores = Scores(
            np.array([0.1, 0.45, 0.8], dtype=np.float32),
            np.array([[0.2, -0.1], [0.3, 0.4], [0.5, 0.1]], dtype=np.float32),
        )
        encoded = DecisionEncoder(MODEL, ["savings", "job"], DecisionPolicy()).encode(
            applications, [NOW_MS - 5, NOW_MS - 10, NOW_MS - 20], scores, NOW
        )
        decisions = [Decision.model_validate_json(e.value) for e in encoded]

        assert [d.outcome for d in decisions] == [Outcome.APPROVE, Outcome.REVIEW, Outcome.DECLINE]
        assert [d.latency_ms for d in decisions] == pytest.approx([5.0, 10.0, 20.0])
        assert [d.decision_id for d in decisions] == [decision_id_for(a.application_id, "m", "7") for a in applications]
        assert decisions[0].reason_codes == []
        assert [r.feature for r in decisions[1].reason_codes] == ["job", "savings"]
        assert [r.feature for r in decisions[2].reason_codes] == ["savings", "job"]
        assert all(d.model == MODEL and d.policy_version == DecisionPolicy().version for d in decisions)
        assert all(d.decided_at == NOW for d in decisions)

    @pytest.mark.parametrize(("parts", "expected"), PINNED_DECISION_IDS)
    def test_the_hot_path_gives_the_decision_ids_released_for_application_and_model(
        self, parts: tuple[str, str, str], expected: str
    ) -> None:
        application_id, model_name, model_version = parts
        application = LoanApplication.model_validate(
            {**ApplicationFactory(seed=5).valid(), "application_id": application_id}, strict=False
        )
        scores = Scores(np.array([0.1], dtype=np.float32), np.zeros((1, 1), dtype=np.float32))
        model = ModelRef(name=model_name, version=model_version, sha256="a" * 64)
        [encoded] = DecisionEncoder(model, ["job"], DecisionPolicy()).encode([application], [NOW_MS], scores, NOW)
        assert encoded.decision_id == expected
        assert Decision.model_validate_json(encoded.value).decision_id == expected

    def test_outcomes_and_reasons_match_the_policy_applied_row_by_row(self) -> None:
        rng = np.random.default_rng(3)
        n, names = 500, ["loan_amount", "savings", "job", "housing", "credit_history", "property"]
        scores = Scores(rng.random(n, dtype=np.float32), rng.normal(size=(n, len(names))).astype(np.float32))
        policy = DecisionPolicy()
        encoded = DecisionEncoder(MODEL, names, policy).encode(_applications(n), [NOW_MS] * n, scores, NOW)
        for i, item in enumerate(encoded):
            decision = Decision.model_validate_json(item.value)
            outcome = policy.outcome(float(scores.probability_of_default[i]))
            assert decision.outcome is outcome
            assert decision.reason_codes == adverse_reasons(outcome, names, scores.contributions[i].tolist())

    def test_a_row_without_a_probability_is_left_out_for_the_caller_to_dead_letter(self) -> None:
        scores = Scores(np.array([0.2, np.nan], dtype=np.float32), np.zeros((2, 1), dtype=np.float32))
        encoded = DecisionEncoder(MODEL, ["job"], DecisionPolicy()).encode(_applications(2), [NOW_MS] * 2, scores, NOW)
        assert len(encoded) == 1

    def test_a_clock_behind_the_record_timestamp_gives_zero_latency_not_negative(self) -> None:
        scores = Scores(np.array([0.1], dtype=np.float32), np.zeros((1, 1), dtype=np.float32))
        [encoded] = DecisionEncoder(MODEL, ["job"], DecisionPolicy()).encode(
            _applications(1), [NOW_MS + 1000], scores, NOW
        )
        assert Decision.model_validate_json(encoded.value).latency_ms == 0.0
