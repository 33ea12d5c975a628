"""The decision policy: thresholds and adverse-action reasons."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import Outcome
from streamer.core.policy import OUTCOMES, DecisionPolicy, adverse_reasons


class TestDecisionPolicy:
    @pytest.mark.parametrize(
        ("probability", "outcome"),
        [(0.0, Outcome.APPROVE), (0.2999, Outcome.APPROVE), (0.30, Outcome.REVIEW), (0.5999, Outcome.REVIEW),
         (0.60, Outcome.DECLINE), (1.0, Outcome.DECLINE)],
    )
    def test_outcome_follows_the_thresholds(self, probability: float, outcome: Outcome) -> None:
        assert DecisionPolicy().outcome(probability) is outcome

    def test_inverted_thresholds_are_refused(self) -> None:
        with pytest.raises(ValueError, match="thresholds"):
            DecisionPolicy(approve_below=0.7, decline_at=0.5)


class TestAdverseReasons:
    names = ("loan_amount", "savings", "checking_account", "job", "housing", "credit_history")

    def test_declines_get_the_four_largest_risk_raising_features_largest_first(self) -> None:
        reasons = adverse_reasons(Outcome.DECLINE, self.names, [0.1, 0.9, 0.5, -2.0, 0.3, 0.2])
        assert [r.feature for r in reasons] == ["savings", "checking_account", "housing", "credit_history"]
        assert all(r.description for r in reasons)

    def test_features_that_lowered_the_risk_are_never_reasons(self) -> None:
        reasons = adverse_reasons(Outcome.REVIEW, self.names, [-0.1, -0.9, 0.5, -2.0, -0.3, -0.2])
        assert [r.feature for r in reasons] == ["checking_account"]

    def test_approvals_carry_no_adverse_reasons(self) -> None:
        assert adverse_reasons(Outcome.APPROVE, self.names, [1.0] * 6) == []


class TestOutcomeIndices:
    def test_vectorised_outcomes_equal_the_scalar_rule(self) -> None:
        policy = DecisionPolicy()
        probabilities = np.linspace(0.0, 1.0, 1001)
        indices = policy.outcome_indices(probabilities)
        assert [OUTCOMES[i] for i in indices] == [policy.outcome(float(p)) for p in probabilities]
