"""Outcomes by protected group, on out-of-fold predictions: approval rate, AUC and adverse-impact ratio.

Groups are derived from the protected attributes whether or not the model uses them:
- sex, from `personal_status` (male_* vs female_*; the source data conflates sex and marital status),
- age band, from `age_years` (under 25 vs 25 and over),
- foreign worker, from `foreign_worker` (yes vs no).

The adverse-impact ratio of a group is its approval rate divided by the highest approval rate among the
groups of the same attribute; the four-fifths rule flags a ratio below 0.8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from streamer.core.policy import DecisionPolicy
from training.metrics import auc

FOUR_FIFTHS: Final = 0.8
SMALL_GROUP: Final = 50  # below this many applicants a group's rates are too noisy to act on

_GROUPINGS: Final[dict[str, tuple[str, Callable[[pd.Series], pd.Series]]]] = {
    "sex": ("personal_status", lambda s: s.map(lambda v: "female" if str(v).startswith("female") else "male")),
    "age band": ("age_years", lambda s: s.map(lambda v: "under 25" if v < 25 else "25 and over")),
    "foreign worker": ("foreign_worker", lambda s: s.map(lambda v: "yes" if v == 1.0 else "no")),
}


def groups(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Attribute label -> each row's group, for the attributes present in `frame`."""
    return {label: derive(frame[column]) for label, (column, derive) in _GROUPINGS.items() if column in frame}


def fairness_table(
    y: NDArray[np.int64], p: NDArray[np.float64], frame: pd.DataFrame, policy: DecisionPolicy
) -> list[dict[str, Any]]:
    """One row per (attribute, group); `p` is [R, N] (CV repeats) or [N], rates averaged over repeats."""
    predictions = np.atleast_2d(p)
    table = []
    for attribute, membership in groups(frame).items():
        rows = []
        for group in sorted(membership.unique()):
            members = (membership == group).to_numpy()
            rows.append(_group_row(attribute, str(group), y[members], predictions[:, members], policy))
        best = max(row["approval_rate"] for row in rows)
        for row in rows:
            ratio = row["approval_rate"] / best if best > 0 else None
            row["adverse_impact_ratio"] = None if ratio is None else round(ratio, 4)
            row["four_fifths_ok"] = None if ratio is None else ratio >= FOUR_FIFTHS
        table.extend(rows)
    return table


def _group_row(
    attribute: str, group: str, y: NDArray[np.int64], p: NDArray[np.float64], policy: DecisionPolicy
) -> dict[str, Any]:
    both_outcomes = 0 < y.sum() < len(y)
    return {
        "attribute": attribute,
        "group": group,
        "count": len(y),
        "default_rate": round(float(y.mean()), 4),
        "approval_rate": round(float(np.mean(p < policy.approve_below)), 4),
        "auc": round(float(auc(y, p).mean()), 4) if both_outcomes else None,
        "small_group": len(y) < SMALL_GROUP,
    }
