"""What `python -m training evaluate` reports, and what the model card is written from.

Two subjects can be evaluated:
- a model family (`logreg`, `gbm`): repeated stratified k-fold CV on the data, every number measured on
  out-of-fold predictions (the fold model never saw the row it scored);
- an artifact id from the registry: the exported ONNX graph scores the data as it is. On its own training
  data that is an in-sample (optimistic) estimate, and the report says so.

Confidence intervals are 95% percentile bootstrap intervals over applicants (rows resampled with
replacement; with CV, each resample also takes one of the repeats in turn, so split-to-split variation
is included). The CV fold mean and standard
deviation of each metric are reported too: they describe how much a 200-row holdout would vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime
import pandas as pd
from numpy.typing import NDArray

from streamer.core.policy import DecisionPolicy
from training import metrics
from training.crossval import CrossValidation
from training.data import TARGET
from training.fairness import fairness_table
from training.onnx_graph import PROBABILITY, onnx_inputs

BOOTSTRAP_RESAMPLES: Final = 1000
METRIC_LABELS: Final = {"auc": "AUC", "gini": "Gini", "ks": "KS", "brier": "Brier score"}


@dataclass(frozen=True)
class Evaluation:
    subject: str
    method: str
    data: dict[str, Any]
    y: NDArray[np.int64] = field(repr=False)
    predictions: NDArray[np.float64] = field(repr=False)  # [R, N] out-of-fold (R repeats) or [1, N]
    metrics: dict[str, dict[str, float]]
    calibration: list[dict[str, Any]]
    confusion: dict[str, dict[str, float]]
    fairness: list[dict[str, Any]]
    notes: tuple[str, ...] = ()
    resamples: int = BOOTSTRAP_RESAMPLES

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "method": self.method,
            "data": self.data,
            "policy_thresholds": DecisionPolicy().thresholds(),
            "metrics": self.metrics,
            "bootstrap_resamples": self.resamples,
            "calibration": self.calibration,
            "confusion_at_policy": self.confusion,
            "fairness": self.fairness,
            "notes": list(self.notes),
        }


def from_cross_validation(
    frame: pd.DataFrame, cv: CrossValidation, subject: str, data: dict[str, Any], resamples: int = BOOTSTRAP_RESAMPLES
) -> Evaluation:
    """The evaluation of a model family from its out-of-fold predictions."""
    y = frame[TARGET].to_numpy(dtype=np.int64)
    summary = _summary(y, cv.out_of_fold, resamples, seed=cv.seed)
    for name, score in metrics.SCORES.items():
        folds = _fold_scores(y, cv, score)
        summary[name] |= {"fold_mean": round(float(folds.mean()), 6), "fold_std": round(float(folds.std()), 6)}
    method = f"{cv.design}; metrics on out-of-fold predictions, averaged over the {cv.repeats} repeats"
    return _evaluation(subject, method, frame, data, y, cv.out_of_fold, summary, resamples=resamples)


def from_predictions(
    frame: pd.DataFrame,
    probability: NDArray[np.float64],
    subject: str,
    data: dict[str, Any],
    notes: Sequence[str] = (),
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 42,
) -> Evaluation:
    """The evaluation of fixed predictions (an exported artifact scoring `frame`)."""
    y = frame[TARGET].to_numpy(dtype=np.int64)
    predictions = np.asarray(probability, dtype=np.float64).reshape(1, -1)
    summary = _summary(y, predictions, resamples, seed)
    method = "the artifact scores the data as given"
    return _evaluation(subject, method, frame, data, y, predictions, summary, notes, resamples)


def artifact_probability(onnx_path: Path, frame: pd.DataFrame) -> NDArray[np.float64]:
    """P(default) for every row of `frame` from an exported graph (its inputs read from the graph)."""
    model = onnx.load(str(onnx_path))
    kinds = {
        i.name: "numeric" if i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT else "categorical"
        for i in model.graph.input
    }
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (probability,) = session.run([PROBABILITY], onnx_inputs(frame, list(kinds), kinds))  # type: ignore[arg-type]
    return np.asarray(probability, dtype=np.float64)


def _summary(y: NDArray[np.int64], p: NDArray[np.float64], resamples: int, seed: int) -> dict[str, dict[str, float]]:
    summary = {}
    for name, score in metrics.SCORES.items():
        low, high = metrics.bootstrap(y, p, score, resamples, seed)
        value = float(np.mean(score(y, p)))
        summary[name] = {"value": round(value, 6), "ci_low": round(low, 6), "ci_high": round(high, 6)}
    return summary


def _fold_scores(y: NDArray[np.int64], cv: CrossValidation, score: metrics.Score) -> NDArray[np.float64]:
    values = []
    for repeat in range(cv.repeats):
        for fold in range(cv.splits):
            held_out = cv.fold_index[repeat] == fold
            values.append(float(score(y[held_out], cv.out_of_fold[repeat, held_out])))
    return np.asarray(values)


def _evaluation(
    subject: str,
    method: str,
    frame: pd.DataFrame,
    data: dict[str, Any],
    y: NDArray[np.int64],
    predictions: NDArray[np.float64],
    summary: dict[str, dict[str, float]],
    notes: Sequence[str] = (),
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Evaluation:
    policy = DecisionPolicy()
    details = {**data, "rows": len(frame), "default_rate": round(float(y.mean()), 6)}
    return Evaluation(
        subject=subject,
        method=method,
        data=details,
        y=y,
        predictions=predictions,
        metrics=summary,
        calibration=metrics.calibration_table(y, predictions),
        confusion=metrics.policy_confusion(y, predictions, policy),
        fairness=fairness_table(y, predictions, frame, policy),
        notes=tuple(notes),
        resamples=resamples,
    )
