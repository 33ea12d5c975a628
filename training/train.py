"""Train, evaluate, gate and export a model in one step: what `python -m training train` runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd
from sklearn.pipeline import Pipeline

from training import card, evaluation, export, gate, store
from training.crossval import REPEATS, SPLITS, CrossValidation, cross_validate
from training.data import DEFAULT_DATA, TARGET, load
from training.pipeline import MODELS, features_including, fit, kinds_of, make, training_auc

DATASET_NAME: Final = "german-credit"


@dataclass(frozen=True)
class Options:
    """How to train: the model family, its seed, the artifact version, the gate and the CV design."""

    model: str = "logreg"
    seed: int = 42
    version: str = "1"
    include_protected: tuple[str, ...] = ()
    min_auc: float = gate.DEFAULT_MIN_AUC
    cv_splits: int = SPLITS
    cv_repeats: int = REPEATS
    jobs: int = 1
    promote: bool = False
    card: bool = True
    bootstrap: int = evaluation.BOOTSTRAP_RESAMPLES


@dataclass(frozen=True)
class TrainingRun:
    artifact: export.Artifact
    report: gate.GateReport
    evaluation: evaluation.Evaluation | None
    path: Path


def train(data: Path, out_dir: Path, options: Options, trained_at: str) -> TrainingRun:
    """Load `data`, then `train_frame`; the artifact records the file's sha256."""
    frame = load(data)
    source = {"path": _display(data), "sha256": export.sha256_of(data)}
    features = features_including(options.include_protected)
    return train_frame(frame, features, source, out_dir, options, trained_at)


def train_frame(
    frame: pd.DataFrame,
    features: Sequence[str],
    source: dict[str, str],
    out_dir: Path,
    options: Options,
    trained_at: str,
) -> TrainingRun:
    """Cross-validate and fit the family's pipeline on all of `frame`, then `publish_gated`."""
    if options.model not in MODELS:
        raise ValueError(f"unknown model {options.model!r}; choose from {list(MODELS)}")
    pipeline = make(options.model, features, options.seed, kinds_of(frame, features))
    cv = cross_validate(
        pipeline,
        frame,
        features,
        seed=options.seed,
        splits=options.cv_splits,
        repeats=options.cv_repeats,
        jobs=options.jobs,
    )
    fit(pipeline, frame, features)
    return publish_gated(pipeline, frame, features, cv, source, out_dir, options, trained_at)


def publish_gated(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    features: Sequence[str],
    cv: CrossValidation,
    source: dict[str, str],
    out_dir: Path,
    options: Options,
    trained_at: str,
) -> TrainingRun:
    """Export a pipeline fitted on `frame` behind the gate, write its card, register it.

    Raises `gate.GateRefused` (nothing written) when any gate check fails, including a converter failure.
    """
    candidate: export.Artifact | export.ExportError
    try:
        candidate = export.build(
            pipeline,
            frame,
            features,
            name=f"{DATASET_NAME}-{options.model}",
            version=options.version,
            metrics=headline_metrics(pipeline, frame, features, cv),
            training_data_sha256=source["sha256"],
            trained_at=trained_at,
            seed=options.seed,
        )
    except export.ConversionFailed as failure:
        candidate = failure
    report = gate.require(gate.inspect(candidate, pipeline, frame, cv_auc=cv.auc_mean, min_auc=options.min_auc))
    if not isinstance(candidate, export.Artifact):  # unreachable: a failed conversion fails the gate
        raise candidate
    evaluated = None
    attachments: dict[str, bytes] = {}
    if options.card:
        evaluated = evaluation.from_cross_validation(frame, cv, candidate.key, source, resamples=options.bootstrap)
        attachments = card.files(candidate, evaluated, report)
    path = store.publish(candidate, out_dir, promote=options.promote, attachments=attachments)
    return TrainingRun(candidate, report, evaluated, path)


def headline_metrics(
    pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], cv: CrossValidation
) -> dict[str, float]:
    """The metrics stored in the artifact's metadata and the registry (the card has the full evaluation)."""
    return {
        "train_auc": round(training_auc(pipeline, frame, features), 6),
        "cv_auc_mean": round(cv.auc_mean, 6),
        "cv_auc_std": round(cv.auc_std, 6),
        "cv_folds": len(cv.fold_auc),
        "train_rows": len(frame),
        "train_default_rate": round(float(frame[TARGET].mean()), 6),
    }


def _display(path: Path) -> str:
    """The data path as the card shows it: relative to the repository for the vendored file."""
    return "training/data/germancredit.csv" if path.resolve() == DEFAULT_DATA.resolve() else str(path)
