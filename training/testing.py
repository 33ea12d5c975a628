"""Real artifacts for tests elsewhere (the worker's hot-reload and rejection tests), built in about a second.

    from training.testing import build_artifact, build_mismatched_artifact

    key = build_artifact(model_dir, version="2", promote=True)            # passes the gate, registered
    bad = build_mismatched_artifact(model_dir, promote=True)              # input names the schema lacks

Both write into `model_dir` (its registry.json included) exactly as `python -m training train` does,
with a 1x5 cross-validation instead of 10x5 and no model card, to stay fast.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from training import export, gate, store
from training.data import DEFAULT_DATA, load
from training.pipeline import default_features, fit, kinds_of, logistic_regression
from training.train import Options, train_frame

TRAINED_AT: Final = "2026-11-22"


def build_artifact(
    model_dir: Path,
    *,
    model: str = "logreg",
    version: str = "2",
    seed: int = 42,
    subsample: float | None = None,
    promote: bool = False,
    min_auc: float = gate.DEFAULT_MIN_AUC,
) -> str:
    """A valid artifact that went through the real gate; returns its id (e.g. "german-credit-logreg-2").

    It differs from the shipped model in bytes (its version is in the graph). Pass `subsample` (a fraction
    of the rows, drawn with `seed`) to make its scores differ too; a gbm's scores also differ by `seed`.
    """
    frame = load(DEFAULT_DATA)
    if subsample is not None:
        frame = frame.sample(frac=subsample, random_state=seed).reset_index(drop=True)
    options = Options(
        model=model, seed=seed, version=version, min_auc=min_auc, cv_splits=5, cv_repeats=1, promote=promote, card=False
    )
    run = train_frame(frame, default_features(), _source(frame), model_dir, options, TRAINED_AT)
    return run.artifact.key


def build_mismatched_artifact(
    model_dir: Path,
    *,
    version: str = "mismatch-1",
    rename: Mapping[str, str] | None = None,
    as_text: Sequence[str] = (),
    promote: bool = False,
) -> str:
    """An artifact whose inputs break the schema, written and registered WITHOUT the gate; returns its id.

    By default `loan_amount` is renamed `loan_amount_eur` (a field LoanApplication lacks); `as_text`
    turns numeric features into string inputs (a kind mismatch). Its file's sha256 matches the registry,
    so a loader can only reject it for its inputs.
    """
    renames = dict(rename) if rename is not None else {"loan_amount": "loan_amount_eur"}
    frame = load(DEFAULT_DATA).rename(columns=renames)
    for name in as_text:
        frame[name] = frame[name].map(lambda value: f"{value:g}")
    features = [renames.get(name, name) for name in default_features()]
    pipeline = fit(logistic_regression(features, seed=42, kinds=kinds_of(frame, features)), frame, features)
    artifact = export.build(
        pipeline,
        frame,
        features,
        name="german-credit-logreg",
        version=version,
        metrics={},
        training_data_sha256=_source(frame)["sha256"],
        trained_at=TRAINED_AT,
        seed=42,
    )
    store.publish(artifact, model_dir, promote=promote)
    return artifact.key


def _source(frame: pd.DataFrame) -> dict[str, str]:
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return {"path": "training/data/germancredit.csv (as modified by training.testing)", "sha256": digest}
