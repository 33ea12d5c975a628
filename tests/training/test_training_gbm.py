"""Specification of the gbm artifact: parity, faithful occlusion reason codes, their cost, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pandas as pd
from numpy.typing import NDArray

from schemas.decision import Outcome
from streamer.core.policy import DecisionPolicy, adverse_reasons
from training import export, gate
from training.onnx_graph import onnx_inputs
from training.onnx_occlusion import OcclusionTerms
from training.pipeline import default_features
from training.train import Options, train_frame

SOURCE = {"path": "training/data/germancredit.csv", "sha256": "0" * 64}


def run(onnx_bytes: bytes, frame: pd.DataFrame, features: Any) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    probability, contributions = session.run(["probability_of_default", "contributions"], onnx_inputs(frame, features))
    return probability, contributions


def reference_of(artifact: export.Artifact) -> dict[str, Any]:
    assert isinstance(artifact.terms, OcclusionTerms)
    return artifact.terms.reference


def substituted(rows: pd.DataFrame, names_per_row: list[list[str]], reference: dict[str, Any]) -> pd.DataFrame:
    """`rows` with, in row i, each feature of names_per_row[i] set to its reference value."""
    changed = rows.copy()
    for i, names in enumerate(names_per_row):
        for name in names:
            changed.iloc[i, changed.columns.get_loc(name)] = reference[name]
    return changed.astype(rows.dtypes)


class TestParity:
    def test_probability_and_contributions_match_scikit_learn_on_every_training_row(
        self, gbm_artifact: export.Artifact, fitted_gbm: Any
    ) -> None:
        """P(default) within 1e-5 of predict_proba; contributions within 1e-4 of scikit-learn's occlusion."""
        parity = gate.measure_parity(gbm_artifact, fitted_gbm.pipeline, fitted_gbm.frame)
        assert parity.probability <= 1e-5
        assert parity.contributions <= 1e-4

    def test_it_honours_the_onnx_contract(self, gbm_artifact: export.Artifact, artifact: export.Artifact) -> None:
        """Same inputs as the logistic model, the contract's outputs, and no schema problems."""
        graph = onnx.load_from_string(gbm_artifact.onnx_bytes).graph
        assert [i.name for i in graph.input] == [i.name for i in onnx.load_from_string(artifact.onnx_bytes).graph.input]
        assert [o.name for o in graph.output] == ["probability_of_default", "contributions"]
        assert gate.schema_problems(gbm_artifact.onnx_bytes) == []
        metadata = {p.key for p in onnx.load_from_string(gbm_artifact.onnx_bytes).metadata_props}
        assert metadata == {p.key for p in onnx.load_from_string(artifact.onnx_bytes).metadata_props}


class TestReasonCodes:
    def test_the_top_reason_is_the_feature_whose_reference_value_moves_the_score_most(
        self, gbm_artifact: export.Artifact, fitted_gbm: Any
    ) -> None:
        """For every row, the largest contribution belongs to the feature that, set alone to its reference
        value, lowers scikit-learn's log-odds the most (computed here independently of the graph)."""
        rows = fitted_gbm.frame[list(fitted_gbm.features)]
        reference = reference_of(gbm_artifact)
        logit = fitted_gbm.pipeline.decision_function(rows)
        moves = np.stack(
            [
                logit
                - fitted_gbm.pipeline.decision_function(rows.assign(**{name: reference[name]}).astype(rows.dtypes))
                for name in fitted_gbm.features
            ],
            axis=1,
        )
        _, contributions = run(gbm_artifact.onnx_bytes, fitted_gbm.frame, fitted_gbm.features)
        decisive = np.max(moves, axis=1) - np.sort(moves, axis=1)[:, -2] > 1e-4  # rows without a near-tie
        assert decisive.mean() > 0.9
        assert np.array_equal(np.argmax(contributions, axis=1)[decisive], np.argmax(moves, axis=1)[decisive])

    def test_removing_the_adverse_reasons_lowers_the_risk_of_every_review_and_decline(
        self, gbm_artifact: export.Artifact, fitted_gbm: Any
    ) -> None:
        """For each application the policy would review or decline, setting the (up to four) features the
        worker would cite to their reference values lowers P(default), and by more on average than
        setting as many randomly chosen features."""
        frame, features, policy = fitted_gbm.frame, fitted_gbm.features, DecisionPolicy()
        probability, contributions = run(gbm_artifact.onnx_bytes, frame, features)
        flagged = np.flatnonzero(probability >= policy.approve_below)
        cited = [
            [r.feature for r in adverse_reasons(policy.outcome(float(probability[i])), features, contributions[i])]
            for i in flagged
        ]
        rng = np.random.default_rng(0)
        random = [list(rng.choice(features, size=len(names), replace=False)) for names in cited]
        rows, reference = frame[list(features)].iloc[flagged], reference_of(gbm_artifact)
        before = fitted_gbm.pipeline.decision_function(rows)
        drop_cited = before - fitted_gbm.pipeline.decision_function(substituted(rows, cited, reference))
        drop_random = before - fitted_gbm.pipeline.decision_function(substituted(rows, random, reference))
        assert len(flagged) > 300
        assert all(cited) and policy.outcome(float(probability[flagged[0]])) is not Outcome.APPROVE
        assert np.all(drop_cited > 0)
        assert drop_cited.mean() > 2 * drop_random.mean()

    def test_the_reference_applicant_has_no_contributions(self, gbm_artifact: export.Artifact, fitted_gbm: Any) -> None:
        """Scoring the reference applicant itself gives exactly zero for every feature."""
        reference = reference_of(gbm_artifact)
        row = pd.DataFrame({n: [v] for n, v in reference.items()}).astype(
            fitted_gbm.frame[list(fitted_gbm.features)].dtypes
        )
        _, contributions = run(gbm_artifact.onnx_bytes, row, fitted_gbm.features)
        assert np.all(contributions == 0.0)

    def test_the_graph_scores_k_plus_one_rows_per_application(
        self, gbm_artifact: export.Artifact, fitted_gbm: Any
    ) -> None:
        """The cost claim: for a batch of 5 the tree ensemble receives 5 x 18 rows (17 features + 1)."""
        model = onnx.load_from_string(gbm_artifact.onnx_bytes)
        model.graph.output.append(onnx.helper.make_tensor_value_info("trees_input", onnx.TensorProto.FLOAT, None))
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (tiled,) = session.run(["trees_input"], onnx_inputs(fitted_gbm.frame.head(5), fitted_gbm.features))
        assert tiled.shape[0] == 5 * (len(fitted_gbm.features) + 1) == 90
        assert json.loads(json.dumps(export.sidecar(gbm_artifact)["contributions"]))["rows_per_input_row"] == 18

    def test_a_row_scores_the_same_alone_as_in_a_batch(self, gbm_artifact: export.Artifact, fitted_gbm: Any) -> None:
        """Tiling happens within the batch, but rows never mix: a row alone gets the same outputs, up to
        float32 rounding (onnxruntime sums the trees in a different order for a different row count)."""
        batch = run(gbm_artifact.onnx_bytes, fitted_gbm.frame.head(7), fitted_gbm.features)
        alone = run(gbm_artifact.onnx_bytes, fitted_gbm.frame.iloc[[4]], fitted_gbm.features)
        np.testing.assert_allclose(alone[0][0], batch[0][4], rtol=0, atol=1e-6)
        np.testing.assert_allclose(alone[1][0], batch[1][4], rtol=0, atol=1e-5)

    def test_an_unknown_category_scores_without_crashing(self, gbm_artifact: export.Artifact, fitted_gbm: Any) -> None:
        """An unseen category encodes as all-zeros and still yields a probability and finite contributions."""
        rows = fitted_gbm.frame.head(2).assign(loan_purpose=["vacation", ""])
        probability, contributions = run(gbm_artifact.onnx_bytes, rows, fitted_gbm.features)
        assert np.all((probability > 0.0) & (probability < 1.0)) and np.all(np.isfinite(contributions))


class TestReproducibility:
    def test_the_same_seed_gives_the_same_sha256_and_another_seed_does_not(
        self, german: pd.DataFrame, tmp_path: Path
    ) -> None:
        """Two gated gbm trainings from scratch with seed 7 register the same sha256; seed 8 differs."""
        digests = []
        for directory, seed in (("a", 7), ("b", 7), ("c", 8)):
            options = Options(model="gbm", seed=seed, cv_splits=2, cv_repeats=1, card=False)
            run = train_frame(german, default_features(), SOURCE, tmp_path / directory, options, "2026-11-22")
            registry = json.loads((tmp_path / directory / "registry.json").read_text())
            digests.append(registry["models"][run.artifact.key]["sha256"])
        assert digests[0] == digests[1] != digests[2]
        assert (tmp_path / "a" / "german-credit-gbm-1.onnx").read_bytes() == (
            tmp_path / "b" / "german-credit-gbm-1.onnx"
        ).read_bytes()
