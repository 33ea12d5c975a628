"""Decision policy: probability of default -> approve / review / decline, with adverse-action reasons.

Pure logic: no I/O, no model runtime. Thresholds are versioned with the policy so every decision
records which rules produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.decision import MAX_REASON_CODES, Outcome, ReasonCode
from streamer.core.reasons import reason_for

OUTCOMES: tuple[Outcome, Outcome, Outcome] = (Outcome.APPROVE, Outcome.REVIEW, Outcome.DECLINE)


@dataclass(frozen=True)
class DecisionPolicy:
    """Approve below `approve_below`, decline at or above `decline_at`, review in between."""

    version: str = "pd-thresholds-1"
    approve_below: float = 0.30
    decline_at: float = 0.60

    def __post_init__(self) -> None:
        if not 0.0 <= self.approve_below <= self.decline_at <= 1.0:
            raise ValueError("policy thresholds must satisfy 0 <= approve_below <= decline_at <= 1")

    def outcome(self, probability_of_default: float) -> Outcome:
        if probability_of_default < self.approve_below:
            return Outcome.APPROVE
        if probability_of_default < self.decline_at:
            return Outcome.REVIEW
        return Outcome.DECLINE

    def outcome_indices(self, probabilities: npt.NDArray[np.floating]) -> npt.NDArray[np.intp]:
        """Per row, an index into OUTCOMES: 0 below approve_below, 2 at or above decline_at, else 1."""
        return np.searchsorted(np.array([self.approve_below, self.decline_at]), probabilities, side="right")

    def thresholds(self) -> dict[str, float]:
        return {"approve_below": self.approve_below, "decline_at": self.decline_at}


def reason_indices(contributions: npt.NDArray[np.floating]) -> list[list[int]]:
    """Per row, up to four feature indices with positive contributions, largest first (ties: input order)."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :MAX_REASON_CODES]
    positive = np.take_along_axis(contributions, order, axis=1) > 0.0
    # Filtered as Python lists: indexing numpy rows one at a time costs more than the whole sort.
    return [[j for j, keep in zip(row, mask, strict=True) if keep]
            for row, mask in zip(order.tolist(), positive.tolist(), strict=True)]


def adverse_reasons(
    outcome: Outcome, feature_names: Sequence[str], contributions: Sequence[float]
) -> list[ReasonCode]:
    """Up to four features that pushed the risk up most, for reviews and declines; none for approvals."""
    if outcome is Outcome.APPROVE:
        return []
    [indices] = reason_indices(np.asarray([contributions], dtype=np.float64))
    return [reason_for(feature_names[j]) for j in indices]
