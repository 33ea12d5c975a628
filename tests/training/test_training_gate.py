"""Specification of the export gate: parity, the AUC floor and the schema, each refusing for real.

Every refusal here comes from a real model through the real converter and onnxruntime; each test checks
that the failed check is named and that nothing in the model directory changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skl2onnx.common.tree_ensemble
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from training import export, gate, store
from training.__main__ import main
from training.crossval import cross_validate
from training.data import TARGET
from training.pipeline import default_features, fit, gradient_boosting
from training.train import Options, publish_gated, train_frame

SOURCE = {"path": "test", "sha256": "0" * 64}
QUICK = Options(cv_splits=3, cv_repeats=1, card=False, version="7")


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.fixture
def model_dir(artifact: export.Artifact, tmp_path: Path) -> Path:
    """A model directory that already serves version 1, so 'writes nothing' is checked against real files."""
    store.publish(artifact, tmp_path / "models", promote=False)
    return tmp_path / "models"


def hist_gradient_boosting(categorical: list[int] | None = None) -> Pipeline:
    """The gbm pipeline with scikit-learn's HistGradientBoostingClassifier as the classifier."""
    classifier = HistGradientBoostingClassifier(max_iter=20, random_state=0, categorical_features=categorical)
    return gradient_boosting(default_features(), seed=0).set_params(classifier=classifier)


def publish_hist(pipeline: Pipeline, german: pd.DataFrame, out: Path) -> None:
    features = default_features()
    with threadpool_limits(1):  # OpenMP threads fight over the two shared cores
        cv = cross_validate(pipeline, german, features, seed=0, splits=3, repeats=1)
        fit(pipeline, german, features)
        publish_gated(pipeline, german, features, cv, SOURCE, out, Options(model="hgb", card=False), "2026-11-22")


def _missing_value_flag_as_int(original: Any) -> Any:
    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(kwargs["nodes_missing_value_tracks_true"])
        return original(*args, **kwargs)

    return add_node


class TestPassingArtifact:
    def test_an_exported_model_passes_every_check(self, artifact: export.Artifact, fitted: Any) -> None:
        """The logistic artifact passes parity, the AUC floor and the schema check."""
        report = gate.inspect(artifact, fitted.pipeline, fitted.frame, cv_auc=0.78)
        assert report.passed
        assert [c.name for c in report.checks] == ["parity", "auc_floor", "schema"]


class TestParityCheck:
    def test_hist_gradient_boosting_fails_to_convert_and_nothing_is_written(
        self, german: pd.DataFrame, model_dir: Path
    ) -> None:
        """skl2onnx 1.20 + onnx 1.23 cannot convert HistGradientBoostingClassifier (a Python bool where onnx
        wants ints): the gate fails parity, naming the converter error, and the directory is untouched."""
        before = files(model_dir)
        with pytest.raises(gate.GateRefused, match="conversion failed") as refused:
            publish_hist(hist_gradient_boosting(), german, model_dir)
        assert refused.value.report.failed == ("parity",)
        assert "Expected an int, got a boolean" in str(refused.value)
        assert files(model_dir) == before

    def test_a_graph_that_really_disagrees_with_scikit_learn_is_refused(
        self, german: pd.DataFrame, model_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the bool fixed, HistGradientBoosting on one-hot inputs converts faithfully, but with native
        categorical splits (banded numerics as categories) the converter ignores the category bitsets: its
        P(default) is off by more than 0.1, the gate refuses, and nothing is written."""
        original = skl2onnx.common.tree_ensemble.add_node
        monkeypatch.setattr(skl2onnx.common.tree_ensemble, "add_node", _missing_value_flag_as_int(original))
        before = files(model_dir)
        banded = [2, 3, 4, 5, 6]  # instalment_rate, years_at_residence, existing_credits, dependents, has_telephone
        with pytest.raises(gate.GateRefused, match="parity") as refused:
            publish_hist(hist_gradient_boosting(categorical=banded), german, model_dir)
        report = refused.value.report
        assert report.failed == ("parity",)
        assert report.parity is not None and report.parity.probability > 0.1
        assert files(model_dir) == before


class TestSchemaCheck:
    def test_a_model_using_a_field_the_schema_lacks_is_refused(self, german: pd.DataFrame, model_dir: Path) -> None:
        """A model trained with an extra `income` column converts and matches scikit-learn, but the schema
        check names the field LoanApplication lacks, and nothing is written."""
        frame = german.assign(income=np.linspace(1000.0, 5000.0, len(german)))
        features = [*default_features(), "income"]
        before = files(model_dir)
        with pytest.raises(gate.GateRefused, match="income") as refused:
            train_frame(frame, features, SOURCE, model_dir, QUICK, "2026-11-22")
        assert refused.value.report.failed == ("schema",)
        assert "not a field of LoanApplication" in str(refused.value)
        assert files(model_dir) == before

    def test_a_model_whose_input_kind_differs_from_the_schema_is_refused(
        self, german: pd.DataFrame, model_dir: Path
    ) -> None:
        """instalment_rate given as text becomes a string input; the schema says numeric: refused."""
        frame = german.assign(instalment_rate=german["instalment_rate"].map(lambda v: f"{v:g}"))
        before = files(model_dir)
        with pytest.raises(gate.GateRefused, match="instalment_rate") as refused:
            train_frame(frame, default_features(), SOURCE, model_dir, QUICK, "2026-11-22")
        assert refused.value.report.failed == ("schema",)
        assert files(model_dir) == before


class TestAucFloor:
    def test_a_model_of_shuffled_labels_is_refused_by_the_default_floor(
        self, german: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`train` on data whose outcomes are shuffled (CV AUC about 0.5) exits 1, prints the failed
        auc_floor check, and writes no file."""
        shuffled = german.assign(**{TARGET: np.random.default_rng(0).permutation(german[TARGET].to_numpy())})
        shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
        out = tmp_path / "models"
        assert main(["train", "--data", str(tmp_path / "shuffled.csv"), "--out", str(out), "--cv-repeats", "1"]) == 1
        error = capsys.readouterr().err
        assert "FAIL  auc_floor" in error
        assert "pass  parity" in error and "pass  schema" in error
        assert "nothing was written" in error
        assert not out.exists()

    def test_the_floor_is_a_flag(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The real model (CV AUC about 0.78) is refused under --min-auc 0.9."""
        out = tmp_path / "models"
        assert main(["train", "--out", str(out), "--cv-repeats", "1", "--min-auc", "0.9", "--no-card"]) == 1
        assert "< 0.9" in capsys.readouterr().err
        assert not out.exists()


class TestCommandLine:
    def test_bad_data_fails_with_a_message_and_writes_nothing(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`train --data` on a file lacking feature columns exits 1, explains why, and writes no files."""
        data = tmp_path / "bad.csv"
        data.write_text("loan_amount,default\n100,0\n")
        out = tmp_path / "models"
        assert main(["train", "--data", str(data), "--out", str(out)]) == 1
        assert "missing columns" in capsys.readouterr().err
        assert not out.exists()

    def test_an_unknown_model_is_rejected_by_the_parser(self) -> None:
        """Only the model families that exist can be asked for."""
        with pytest.raises(SystemExit):
            main(["train", "--model", "xgboost"])

    def test_a_passing_run_prints_the_gate_and_registers_the_model(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A quick gbm run prints each passed check and leaves the model registered as champion."""
        out = tmp_path / "models"
        assert (
            main(["train", "--model", "gbm", "--out", str(out), "--cv-splits", "3", "--cv-repeats", "1", "--no-card"])
            == 0
        )
        printed = capsys.readouterr().out
        assert printed.count("gate       pass") == 3
        assert json.loads((out / "registry.json").read_text())["champion"] == "german-credit-gbm-1"
