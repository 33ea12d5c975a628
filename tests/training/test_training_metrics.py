"""Specification of training.metrics and training.fairness against scikit-learn, scipy and hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp  # type: ignore[import-untyped]
from sklearn.metrics import brier_score_loss, roc_auc_score

from streamer.core.policy import DecisionPolicy
from training import metrics
from training.fairness import fairness_table

RNG = np.random.default_rng(3)
Y = RNG.integers(0, 2, size=400)
P = np.clip(0.3 * Y + RNG.normal(0.35, 0.2, size=400), 0.0, 1.0).round(2)  # rounded: plenty of ties


class TestScores:
    def test_auc_is_scikit_learns_including_ties(self) -> None:
        """The rank-based AUC equals roc_auc_score on scores with many ties."""
        assert metrics.auc(Y, P) == pytest.approx(roc_auc_score(Y, P), abs=1e-12)

    def test_gini_is_twice_auc_minus_one(self) -> None:
        """Gini = 2 AUC - 1."""
        assert metrics.gini(Y, P) == pytest.approx(2 * roc_auc_score(Y, P) - 1, abs=1e-12)

    def test_ks_is_the_two_sample_kolmogorov_smirnov_statistic(self) -> None:
        """KS equals scipy's two-sample statistic between the scores of defaults and non-defaults."""
        assert metrics.ks(Y, P) == pytest.approx(ks_2samp(P[Y == 1], P[Y == 0]).statistic, abs=1e-12)

    def test_brier_is_scikit_learns(self) -> None:
        """Brier score equals brier_score_loss."""
        assert metrics.brier(Y, P) == pytest.approx(brier_score_loss(Y, P), abs=1e-12)

    def test_scores_are_vectorised_over_a_leading_axis(self) -> None:
        """A [2, N] batch scores each row as if alone."""
        batch = np.stack([P, 1 - P])
        np.testing.assert_allclose(metrics.auc(Y, batch), [roc_auc_score(Y, P), roc_auc_score(Y, 1 - P)])

    def test_the_bootstrap_interval_brackets_the_estimate(self) -> None:
        """The 95% bootstrap interval of AUC contains the AUC and is a few hundredths wide for 400 rows."""
        low, high = metrics.bootstrap(Y, P, metrics.auc, resamples=300, seed=0)
        assert low < float(metrics.auc(Y, P)) < high
        assert 0.02 < high - low < 0.2


class TestTables:
    def test_the_calibration_table_has_ten_bins_covering_every_prediction(self) -> None:
        """Decile bins of a continuous score hold a tenth of the rows each; their counts sum to N."""
        p = RNG.random(1000)
        table = metrics.calibration_table(np.zeros(1000, dtype=np.int64), p)
        assert len(table) == 10 and sum(r["count"] for r in table) == 1000
        assert all(r["pd_from"] <= r["mean_pd"] <= r["pd_to"] for r in table)

    def test_the_policy_confusion_matches_the_policys_own_outcomes(self) -> None:
        """Counts per (actual, decision) are what DecisionPolicy.outcome gives row by row."""
        policy = DecisionPolicy()
        table = metrics.policy_confusion(Y, P, policy)
        for actual, label in (("default", 1), ("no_default", 0)):
            outcomes = pd.Series([policy.outcome(float(p)).value for p in P[label == Y]]).value_counts()
            for name in ("approve", "review", "decline"):
                assert table[actual][name] == outcomes.get(name, 0)

    def test_the_adverse_impact_ratio_is_approval_relative_to_the_best_group(self) -> None:
        """Under-25s approved 1 in 4, over-25s 3 in 4: AIR 1/3 for the young, flagged below four-fifths."""
        frame = pd.DataFrame({"age_years": [20, 21, 22, 23, 40, 41, 42, 43]})
        p = np.array([0.1, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.5])
        y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
        rows = {r["group"]: r for r in fairness_table(y, p, frame, DecisionPolicy())}
        assert rows["under 25"]["approval_rate"] == 0.25 and rows["25 and over"]["approval_rate"] == 0.75
        assert rows["under 25"]["adverse_impact_ratio"] == pytest.approx(1 / 3, abs=1e-4)
        assert rows["under 25"]["four_fifths_ok"] is False and rows["25 and over"]["four_fifths_ok"] is True

    def test_sex_is_derived_from_personal_status(self) -> None:
        """male_* rows are male and female_* rows are female; foreign_worker 1/0 is yes/no."""
        frame = pd.DataFrame(
            {
                "personal_status": ["male_single", "female_single", "male_married_widowed"],
                "foreign_worker": [1.0, 0.0, 1.0],
            }
        )
        rows = fairness_table(np.array([0, 1, 1]), np.array([0.1, 0.1, 0.9]), frame, DecisionPolicy())
        counts = {(r["attribute"], r["group"]): r["count"] for r in rows}
        assert counts == {
            ("sex", "female"): 1,
            ("sex", "male"): 2,
            ("foreign worker", "no"): 1,
            ("foreign worker", "yes"): 2,
        }
