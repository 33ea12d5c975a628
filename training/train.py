"""Train, evaluate and export a model in one step: what `python -m training train` runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from training import export
from training.data import TARGET, load
from training.pipeline import cross_validated_auc, default_features, fit, logistic_regression, training_auc

MODELS: Final = ("logreg",)
DATASET_NAME: Final = "german-credit"


@dataclass(frozen=True)
class TrainingRun:
    artifact: export.Artifact
    path: Path


def train(
    data: Path,
    out_dir: Path,
    *,
    seed: int,
    version: str,
    promote: bool,
    trained_at: str,
    model: str = "logreg",
) -> TrainingRun:
    """Fit on all of `data`, measure 10x5 CV AUC, export behind the parity gate and register the result."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {list(MODELS)}")
    frame = load(data)
    features = default_features()
    pipeline = logistic_regression(features, seed)
    cv = cross_validated_auc(pipeline, frame, features, seed)
    fit(pipeline, frame, features)
    metrics = {
        "train_auc": round(training_auc(pipeline, frame, features), 6),
        "cv_auc_mean": round(cv.mean, 6),
        "cv_auc_std": round(cv.std, 6),
        "cv_folds": cv.folds,
        "train_rows": len(frame),
        "train_default_rate": round(float(frame[TARGET].mean()), 6),
    }
    artifact = export.build(
        pipeline,
        frame,
        features,
        name=f"{DATASET_NAME}-{model}",
        version=version,
        metrics=metrics,
        training_data_sha256=export.sha256_of(data),
        trained_at=trained_at,
        seed=seed,
    )
    return TrainingRun(artifact, export.write(artifact, out_dir, promote))
