"""The model card's PNG plots, drawn from an evaluation's (out-of-fold) predictions with matplotlib (Agg)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Final

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from sklearn.metrics import roc_curve

from streamer.core.policy import DecisionPolicy
from training.evaluation import Evaluation

SIZE: Final = (5.0, 4.0)
_PNG_METADATA: Final = {"Software": None}  # no matplotlib version stamp: same data, same bytes


def roc(evaluation: Evaluation, axes: Axes) -> None:
    """ROC curve per CV repeat (or the single prediction set), with the chance diagonal."""
    auc = evaluation.metrics["auc"]
    for i, predictions in enumerate(evaluation.predictions):
        fpr, tpr, _ = roc_curve(evaluation.y, predictions)
        label = f"AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]" if i == 0 else None
        axes.plot(fpr, tpr, color="tab:blue", alpha=0.35 if len(evaluation.predictions) > 1 else 1.0, lw=1, label=label)
    axes.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    axes.set(xlabel="false positive rate (non-defaults flagged)", ylabel="true positive rate (defaults flagged)")
    axes.set_title("ROC, out-of-fold" if len(evaluation.predictions) > 1 else "ROC")
    axes.legend(loc="lower right")


def calibration(evaluation: Evaluation, axes: Axes) -> None:
    """Observed default rate against mean P(default) per decile bin, with the diagonal of perfect calibration."""
    rows = evaluation.calibration
    axes.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    axes.plot([r["mean_pd"] for r in rows], [r["default_rate"] for r in rows], marker="o", color="tab:blue")
    axes.set(xlabel="mean predicted P(default)", ylabel="observed default rate", xlim=(0, 1), ylim=(0, 1))
    axes.set_title(f"Calibration by decile (Brier {evaluation.metrics['brier']['value']:.3f})")


def scores(evaluation: Evaluation, axes: Axes) -> None:
    """Distribution of P(default) for applicants who defaulted and who did not, with the policy thresholds."""
    bins = np.linspace(0.0, 1.0, 41).tolist()
    pooled = evaluation.predictions.ravel()
    outcome = np.tile(evaluation.y, len(evaluation.predictions))
    for label, value, colour in (("did not default", 0, "tab:green"), ("defaulted", 1, "tab:red")):
        axes.hist(pooled[outcome == value], bins=bins, density=True, alpha=0.5, color=colour, label=label)
    policy = DecisionPolicy()
    for threshold, name in ((policy.approve_below, "approve <"), (policy.decline_at, "decline >=")):
        axes.axvline(threshold, color="black", ls=":", lw=1)
        axes.text(
            threshold,
            axes.get_ylim()[1] * 0.97,
            f"{name} {threshold:g} ",
            fontsize=8,
            va="top",
            ha="right",
            rotation=90,
        )
    axes.set(xlabel="P(default)", ylabel="density")
    axes.set_title("Scores by outcome")
    axes.legend(loc="upper right")


PLOTS: Final[dict[str, Callable[[Evaluation, Axes], None]]] = {"roc": roc, "calibration": calibration, "scores": scores}


def render(evaluation: Evaluation) -> dict[str, bytes]:
    """Plot name -> PNG bytes."""
    images = {}
    for name, draw in PLOTS.items():
        figure, axes = plt.subplots(figsize=SIZE, dpi=100)
        try:
            draw(evaluation, axes)
            figure.tight_layout()
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", metadata=_PNG_METADATA)
            images[name] = buffer.getvalue()
        finally:
            plt.close(figure)
    return images
