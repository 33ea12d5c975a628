"""Specification of the exported ONNX artifact: the README contract, parity, contributions, bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
from numpy.typing import NDArray

from schemas import FEATURES_BY_NAME
from streamer.core.policy import DecisionPolicy
from training import export, gate
from training.onnx_graph import linear_terms, onnx_inputs
from training.pipeline import fit, logistic_regression

README_METADATA_KEYS = {
    "name",
    "version",
    "feature_names",
    "target",
    "training_data_sha256",
    "trained_at",
    "metrics",
    "policy_thresholds",
}


def run(onnx_bytes: bytes, feed: dict[str, NDArray[Any]]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    probability, contributions = session.run(["probability_of_default", "contributions"], feed)
    return probability, contributions


class TestContract:
    def test_inputs_are_the_features_in_order_as_float_or_string_columns(self, artifact: export.Artifact) -> None:
        """One [None, 1] input per feature, in feature order: float for numeric, string for categorical."""
        graph = onnx.load_from_string(artifact.onnx_bytes).graph
        assert [i.name for i in graph.input] == list(artifact.features)
        for declared in graph.input:
            tensor = declared.type.tensor_type
            numeric = FEATURES_BY_NAME[declared.name].kind == "numeric"
            assert tensor.elem_type == (onnx.TensorProto.FLOAT if numeric else onnx.TensorProto.STRING)
            assert [(d.dim_value, d.dim_param) for d in tensor.shape.dim] == [(0, ""), (1, "")]

    def test_outputs_are_probability_of_default_and_contributions(self, artifact: export.Artifact) -> None:
        """Outputs are probability_of_default float [None] and contributions float [None, K]."""
        outputs = onnx.load_from_string(artifact.onnx_bytes).graph.output
        assert [o.name for o in outputs] == ["probability_of_default", "contributions"]
        assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in outputs)
        shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in outputs]
        assert shapes == [[0], [0, len(artifact.features)]]

    def test_metadata_carries_the_readme_keys_with_policy_thresholds(self, artifact: export.Artifact) -> None:
        """metadata_props has exactly the README's keys; structured values are JSON."""
        props = {p.key: p.value for p in onnx.load_from_string(artifact.onnx_bytes).metadata_props}
        assert set(props) == README_METADATA_KEYS
        assert (props["name"], props["version"]) == ("german-credit-logreg", "1")
        assert json.loads(props["feature_names"]) == list(artifact.features)
        assert json.loads(props["policy_thresholds"]) == DecisionPolicy().thresholds()
        assert json.loads(props["metrics"]) == artifact.metrics
        assert props["trained_at"] == "2026-11-22"
        assert "creditability" in props["target"]

    def test_protected_features_are_not_inputs_by_default(self, artifact: export.Artifact) -> None:
        """Sex/marital status, foreign-worker status and age are not model inputs."""
        assert {"personal_status", "foreign_worker", "age_years"}.isdisjoint(artifact.features)


class TestParity:
    def test_probability_matches_scikit_learn_on_every_training_row(
        self, artifact: export.Artifact, fitted: Any
    ) -> None:
        """ONNX P(default) is within 1e-5 of predict_proba on all 1,000 training rows."""
        probability, _ = run(artifact.onnx_bytes, onnx_inputs(fitted.frame, fitted.features))
        expected = fitted.pipeline.predict_proba(fitted.frame[list(fitted.features)])[:, 1]
        assert probability.shape == (1000,)
        assert np.max(np.abs(probability - expected)) <= 1e-5
        assert gate.measure_parity(artifact, fitted.pipeline, fitted.frame).probability <= 1e-5

    def test_contributions_plus_base_sum_to_the_scikit_learn_logit(
        self, artifact: export.Artifact, fitted: Any
    ) -> None:
        """Per-feature contributions, summed, plus the reference log-odds equal decision_function within 1e-4."""
        _, contributions = run(artifact.onnx_bytes, onnx_inputs(fitted.frame, fitted.features))
        base = linear_terms(fitted.pipeline, fitted.frame, fitted.features).base
        logit = fitted.pipeline.decision_function(fitted.frame[list(fitted.features)])
        assert np.max(np.abs(contributions.sum(axis=1, dtype=np.float64) + base - logit)) <= 1e-4

    def test_a_numeric_contribution_is_its_coefficient_times_its_centred_scaled_value(
        self, artifact: export.Artifact, fitted: Any
    ) -> None:
        """loan_amount's contribution is coef * (z - mean z), z its standardised value, positive = riskier."""
        _, contributions = run(artifact.onnx_bytes, onnx_inputs(fitted.frame, fitted.features))
        amount = fitted.frame["loan_amount"].to_numpy()
        z = (amount - amount.mean()) / amount.std()
        coef = fitted.pipeline.named_steps["classifier"].coef_[0][0]  # numeric columns come first
        expected = coef * (z - z.mean())
        np.testing.assert_allclose(contributions[:, fitted.features.index("loan_amount")], expected, atol=1e-4)

    def test_the_gate_refuses_a_graph_that_disagrees_with_scikit_learn(
        self, artifact: export.Artifact, fitted: Any
    ) -> None:
        """Checking the graph against a differently regularised pipeline fails the parity check."""
        other = fit(logistic_regression(fitted.features, seed=42, c=10.0), fitted.frame, fitted.features)
        report = gate.inspect(artifact, other, fitted.frame, cv_auc=0.8)
        assert report.failed == ("parity",)
        assert report.parity is not None and report.parity.probability > 1e-3


class TestInference:
    def test_an_unknown_category_scores_without_crashing(self, artifact: export.Artifact, fitted: Any) -> None:
        """An unseen or empty category encodes as all-zeros and still yields a probability in (0, 1)."""
        rows = fitted.frame.head(3).copy()
        rows["loan_purpose"] = ["vacation", "", "new_car"]
        rows["housing"] = ["castle", "own", "own"]
        probability, contributions = run(artifact.onnx_bytes, onnx_inputs(rows, fitted.features))
        assert np.all((probability > 0.0) & (probability < 1.0))
        assert np.all(np.isfinite(contributions))

    def test_a_batch_of_one_scores_the_same_as_in_a_batch(self, artifact: export.Artifact, fitted: Any) -> None:
        """Scoring a row alone gives the same probability as scoring it among others."""
        batch, _ = run(artifact.onnx_bytes, onnx_inputs(fitted.frame.head(5), fitted.features))
        alone, _ = run(artifact.onnx_bytes, onnx_inputs(fitted.frame.iloc[[3]], fitted.features))
        assert alone[0] == batch[3]


class TestDeterminism:
    def test_the_same_inputs_export_identical_bytes(
        self, artifact: export.Artifact, make_artifact: Callable[..., export.Artifact]
    ) -> None:
        """Exporting the same fitted pipeline twice gives byte-identical files."""
        assert make_artifact().onnx_bytes == artifact.onnx_bytes

    def test_trained_at_honours_source_date_epoch(self) -> None:
        """SOURCE_DATE_EPOCH=1795305600 gives trained_at 2026-11-22."""
        assert export.build_date({"SOURCE_DATE_EPOCH": "1795305600"}) == "2026-11-22"

    def test_trained_at_is_todays_utc_date_without_source_date_epoch(self) -> None:
        """Without SOURCE_DATE_EPOCH, trained_at is the current UTC date (day granularity)."""
        before = datetime.now(UTC).date().isoformat()
        assert export.build_date({}) in {before, datetime.now(UTC).date().isoformat()}

    def test_a_malformed_source_date_epoch_is_refused(self) -> None:
        """A SOURCE_DATE_EPOCH that is not whole seconds is an error, not silently today."""
        with pytest.raises(export.ExportError, match="SOURCE_DATE_EPOCH"):
            export.build_date({"SOURCE_DATE_EPOCH": "2026-11-22"})


class TestShippedModel:
    def test_retraining_reproduces_the_shipped_artifact_byte_for_byte(self, retrained: Path, shipped: Path) -> None:
        """`python -m training train` with seed 42 and the shipped SOURCE_DATE_EPOCH rebuilds identical files."""
        for name in ("german-credit-logreg-1.onnx", "german-credit-logreg-1.json"):
            assert (retrained / name).read_bytes() == (shipped / name).read_bytes(), name
        fresh, stored = (json.loads((d / "registry.json").read_text()) for d in (retrained, shipped))
        assert fresh["models"]["german-credit-logreg-1"] == stored["models"]["german-credit-logreg-1"]

    def test_retraining_reproduces_the_shipped_model_card_and_evaluation(self, retrained: Path, shipped: Path) -> None:
        """The shipped card and its evaluation JSON are what the training code writes today."""
        for name in ("german-credit-logreg-1.md", "german-credit-logreg-1-evaluation.json"):
            assert (retrained / name).read_text() == (shipped / name).read_text(), name
        for plot in ("roc", "calibration", "scores"):
            assert (shipped / f"german-credit-logreg-1-{plot}.png").read_bytes().startswith(b"\x89PNG")

    def test_the_shipped_registry_serves_a_file_with_the_registered_sha256(self, shipped: Path) -> None:
        """registry.json's champion exists on disk with the sha256 the registry records for it."""
        registry = json.loads((shipped / "registry.json").read_text())
        entry = registry["models"][registry["champion"]]
        assert entry["sha256"] == export.sha256_of(shipped / entry["file"])

    def test_the_retrained_model_gives_the_same_scores_as_the_shipped_one(
        self, retrained: Path, shipped: Path, fitted: Any
    ) -> None:
        """Both files give exactly the same probabilities and contributions on the training data."""
        feed = onnx_inputs(fitted.frame, fitted.features)
        fresh = run((retrained / "german-credit-logreg-1.onnx").read_bytes(), feed)
        stored = run((shipped / "german-credit-logreg-1.onnx").read_bytes(), feed)
        np.testing.assert_array_equal(fresh[0], stored[0])
        np.testing.assert_array_equal(fresh[1], stored[1])
