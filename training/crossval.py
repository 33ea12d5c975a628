"""Repeated stratified k-fold cross-validation that keeps every out-of-fold prediction.

The fold AUCs feed the export gate's AUC floor; the out-of-fold predictions feed the evaluation report,
the model card's plots and its fairness table, so every number there is measured on rows the model
that scored them did not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed

from training.data import TARGET

SPLITS: Final = 5
REPEATS: Final = 10


@dataclass(frozen=True)
class CrossValidation:
    splits: int
    repeats: int
    seed: int
    fold_auc: NDArray[np.float64]  # [repeats * splits]
    out_of_fold: NDArray[np.float64]  # [repeats, N]: P(default) from the fold model that did not see the row
    fold_index: NDArray[np.int64]  # [repeats, N]: which fold of its repeat held the row out

    @property
    def auc_mean(self) -> float:
        return float(self.fold_auc.mean())

    @property
    def auc_std(self) -> float:
        return float(self.fold_auc.std())

    @property
    def design(self) -> str:
        return f"{self.repeats}x{self.splits} repeated stratified k-fold, seed {self.seed}"


def cross_validate(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    features: Sequence[str],
    *,
    seed: int,
    splits: int = SPLITS,
    repeats: int = REPEATS,
    jobs: int = 1,
) -> CrossValidation:
    """Fit a fresh clone of `pipeline` per fold; return fold AUCs and out-of-fold P(default)."""
    rows, target = frame[list(features)], frame[TARGET].to_numpy()
    folds = list(RepeatedStratifiedKFold(n_splits=splits, n_repeats=repeats, random_state=seed).split(rows, target))
    predictions = Parallel(n_jobs=jobs)(
        delayed(_fold)(clone(pipeline), rows, target, train, test) for train, test in folds
    )
    out_of_fold = np.full((repeats, len(frame)), np.nan)
    fold_index = np.zeros((repeats, len(frame)), dtype=np.int64)
    fold_auc = np.empty(len(folds))
    for i, ((_, test), predicted) in enumerate(zip(folds, predictions, strict=True)):
        out_of_fold[i // splits, test] = predicted
        fold_index[i // splits, test] = i % splits
        fold_auc[i] = roc_auc_score(target[test], predicted)
    return CrossValidation(splits, repeats, seed, fold_auc, out_of_fold, fold_index)


def _fold(
    pipeline: Pipeline, rows: pd.DataFrame, target: NDArray[np.int64], train: NDArray[np.intp], test: NDArray[np.intp]
) -> NDArray[np.float64]:
    pipeline.fit(rows.iloc[train], target[train])
    return np.asarray(pipeline.predict_proba(rows.iloc[test])[:, 1], dtype=np.float64)
