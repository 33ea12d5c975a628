"""Artifacts for the training tests, built from the training code so no test trusts a stale binary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from training import export
from training.__main__ import main
from training.data import DEFAULT_DATA, load
from training.pipeline import default_features, fit, gradient_boosting, logistic_regression

SHIPPED_EPOCH = "1795305600"  # 2026-11-22, the SOURCE_DATE_EPOCH the shipped model was built with
SHIPPED = Path(__file__).resolve().parents[2] / "onnx_models"


@dataclass(frozen=True)
class Fitted:
    frame: pd.DataFrame
    features: tuple[str, ...]
    pipeline: Pipeline


class ArtifactMaker(Protocol):
    def __call__(self, version: str = "1", trained_at: str = "2026-11-22") -> export.Artifact: ...


@pytest.fixture(scope="session")
def german() -> pd.DataFrame:
    return load(DEFAULT_DATA)


@pytest.fixture(scope="session")
def fitted(german: pd.DataFrame) -> Fitted:
    features = default_features()
    return Fitted(german, features, fit(logistic_regression(features, seed=42), german, features))


@pytest.fixture(scope="session")
def fitted_gbm(german: pd.DataFrame) -> Fitted:
    features = default_features()
    return Fitted(german, features, fit(gradient_boosting(features, seed=42), german, features))


def build(fitted: Fitted, name: str, version: str = "1", trained_at: str = "2026-11-22") -> export.Artifact:
    """An artifact of an already fitted pipeline, without the slow cross-validation (placeholder metrics)."""
    return export.build(
        fitted.pipeline,
        fitted.frame,
        fitted.features,
        name=name,
        version=version,
        metrics={"train_auc": 0.0},
        training_data_sha256=export.sha256_of(DEFAULT_DATA),
        trained_at=trained_at,
        seed=42,
    )


@pytest.fixture(scope="session")
def make_artifact(fitted: Fitted) -> ArtifactMaker:
    """Builds logistic artifacts of the fitted pipeline."""

    def make(version: str = "1", trained_at: str = "2026-11-22") -> export.Artifact:
        return build(fitted, "german-credit-logreg", version, trained_at)

    return make


@pytest.fixture(scope="session")
def artifact(make_artifact: ArtifactMaker) -> export.Artifact:
    return make_artifact()


@pytest.fixture(scope="session")
def gbm_artifact(fitted_gbm: Fitted) -> export.Artifact:
    return build(fitted_gbm, "german-credit-gbm")


@pytest.fixture(scope="session")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shipped default model rebuilt by the CLI, exactly as `make model` builds it, in a fresh dir."""
    out = tmp_path_factory.mktemp("retrained")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOURCE_DATE_EPOCH", SHIPPED_EPOCH)
        assert main(["train", "--out", str(out), "--seed", "42", "--version", "1"]) == 0
    yield out


@pytest.fixture
def shipped() -> Path:
    return SHIPPED
