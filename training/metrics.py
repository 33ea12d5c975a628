"""Discrimination and calibration metrics of P(default) against outcomes. Pure numpy.

Every score function takes `y` [N] (1 = defaulted) and `p` [..., N]: a leading batch axis (bootstrap
resamples, CV repeats) is scored row by row in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from streamer.core.policy import DecisionPolicy

Scores = NDArray[np.float64]
Score = Callable[[NDArray[np.int64], Scores], Scores]
OUTCOMES: Final = ("approve", "review", "decline")


def auc(y: NDArray[np.int64], p: Scores) -> Scores:
    """ROC AUC as the Mann-Whitney statistic: P(score of a default > score of a non-default), ties 1/2."""
    y = np.broadcast_to(y, p.shape)
    positives = y.sum(axis=-1)
    negatives = y.shape[-1] - positives
    ranks = pd.DataFrame(np.atleast_2d(p)).rank(axis=1).to_numpy().reshape(p.shape)  # ties: average rank
    rank_sum = np.where(y == 1, ranks, 0.0).sum(axis=-1)
    return np.asarray((rank_sum - positives * (positives + 1) / 2) / (positives * negatives), dtype=np.float64)


def gini(y: NDArray[np.int64], p: Scores) -> Scores:
    """The accuracy ratio, 2 * AUC - 1."""
    return 2.0 * auc(y, p) - 1.0


def ks(y: NDArray[np.int64], p: Scores) -> Scores:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of defaults and non-defaults."""
    order = np.argsort(p, axis=-1, kind="stable")
    scores = np.take_along_axis(p, order, axis=-1)
    outcome = np.take_along_axis(np.broadcast_to(y, p.shape), order, axis=-1)
    bad = np.cumsum(outcome, axis=-1) / outcome.sum(axis=-1, keepdims=True)
    good = np.cumsum(1 - outcome, axis=-1) / (1 - outcome).sum(axis=-1, keepdims=True)
    gap = np.abs(bad - good)
    # A threshold separates whole tie groups: only the last position of each group is a valid cut.
    inside_tie = np.zeros_like(gap, dtype=bool)
    inside_tie[..., :-1] = scores[..., 1:] == scores[..., :-1]
    return np.asarray(np.where(inside_tie, 0.0, gap).max(axis=-1), dtype=np.float64)


def brier(y: NDArray[np.int64], p: Scores) -> Scores:
    """Mean squared difference between P(default) and the 0/1 outcome (lower is better)."""
    return np.asarray(np.mean((p - y) ** 2, axis=-1), dtype=np.float64)


SCORES: Final[dict[str, Score]] = {"auc": auc, "gini": gini, "ks": ks, "brier": brier}


def bootstrap(y: NDArray[np.int64], p: Scores, score: Score, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of `score` over resamples of rows, with replacement.

    With `p` [R, N] (R CV repeats), resample b scores repeat b mod R, so the interval covers both which
    applicants were sampled and how the CV happened to split them.
    """
    rng = np.random.default_rng(seed)
    predictions = np.atleast_2d(p)
    rows = rng.integers(0, y.shape[0], size=(resamples, y.shape[0]))
    repeat = (np.arange(resamples) % predictions.shape[0])[:, np.newaxis]
    values = score(y[rows], predictions[repeat, rows])
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def calibration_table(y: NDArray[np.int64], p: Scores, bins: int = 10) -> list[dict[str, Any]]:
    """Predictions cut at their deciles: per bin, the count, mean P(default) and observed default rate.

    `p` may be [R, N] (CV repeats): all R * N predictions are pooled, and counts are per repeat.
    """
    repeats = np.atleast_2d(p).shape[0]
    flat, outcome = np.atleast_2d(p).ravel(), np.tile(y, repeats)
    edges = np.unique(np.quantile(flat, np.linspace(0.0, 1.0, bins + 1)))
    which = np.clip(np.searchsorted(edges, flat, side="right") - 1, 0, len(edges) - 2)
    table = []
    for b in range(len(edges) - 1):
        members = which == b
        if members.any():
            table.append(
                {
                    "bin": b + 1,
                    "pd_from": round(float(edges[b]), 6),
                    "pd_to": round(float(edges[b + 1]), 6),
                    "count": round(float(members.sum()) / repeats, 1),
                    "mean_pd": round(float(flat[members].mean()), 6),
                    "default_rate": round(float(outcome[members].mean()), 6),
                }
            )
    return table


def policy_outcomes(p: Scores, policy: DecisionPolicy) -> NDArray[np.int64]:
    """0 = approve, 1 = review, 2 = decline, by the policy's thresholds (same rule as `policy.outcome`)."""
    return np.asarray((p >= policy.approve_below).astype(np.int64) + (p >= policy.decline_at), dtype=np.int64)


def policy_confusion(y: NDArray[np.int64], p: Scores, policy: DecisionPolicy) -> dict[str, dict[str, float]]:
    """Counts of actual outcome x policy decision (per repeat when `p` is [R, N])."""
    repeats = np.atleast_2d(p).shape[0]
    decided, outcome = policy_outcomes(np.atleast_2d(p).ravel(), policy), np.tile(y, repeats)
    return {
        actual: {
            name: round(float(np.sum((outcome == label) & (decided == i))) / repeats, 1)
            for i, name in enumerate(OUTCOMES)
        }
        for actual, label in (("default", 1), ("no_default", 0))
    }


def approval_rate(p: Scores, policy: DecisionPolicy) -> float:
    """Share of predictions below the approve threshold (averaged over repeats when `p` is [R, N])."""
    return float(np.mean(np.atleast_2d(p) < policy.approve_below))
