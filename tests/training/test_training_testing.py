"""Specification of training.testing: artifacts other test suites build, checked with the worker's loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamer.model.onnx_scorer import SMOKE_APPLICATION, ModelLoadError, OnnxScorer
from streamer.model.registry import champion
from training.testing import build_artifact, build_mismatched_artifact


def load_champion(model_dir: Path) -> OnnxScorer:
    entry = champion(model_dir)
    return OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)


@pytest.fixture
def model_dir(shipped: Path, tmp_path: Path) -> Path:
    """A copy of the shipped model directory (version 1 champion)."""
    for name in ("german-credit-logreg-1.onnx", "registry.json"):
        shutil.copy(shipped / name, tmp_path / name)
    return tmp_path


class TestBuildArtifact:
    def test_it_registers_a_different_valid_artifact_the_worker_loads(self, model_dir: Path) -> None:
        """Version 2, promoted, loads in the worker's OnnxScorer with a new sha256."""
        key = build_artifact(model_dir, version="2", subsample=0.8, promote=True)
        scorer = load_champion(model_dir)
        assert key == "german-credit-logreg-2"
        assert scorer.ref.version == "2"
        registry = json.loads((model_dir / "registry.json").read_text())
        assert registry["models"][key]["sha256"] != registry["models"]["german-credit-logreg-1"]["sha256"]

    def test_a_gbm_artifact_loads_in_the_worker_and_without_promote_the_champion_stays(self, model_dir: Path) -> None:
        """A gbm version 3 is only registered; loaded directly, the worker's scorer takes it (smoke test
        included) and explains a score with one contribution per input."""
        key = build_artifact(model_dir, model="gbm", version="3")
        assert champion(model_dir).artifact_id == "german-credit-logreg-1"
        entry = json.loads((model_dir / "registry.json").read_text())["models"][key]
        scorer = OnnxScorer.load(model_dir / entry["file"], entry["name"], entry["version"], entry["sha256"])
        scores = scorer.score([SMOKE_APPLICATION])
        assert 0.0 < float(scores.probability_of_default[0]) < 1.0
        assert scores.contributions.shape == (1, len(scorer.feature_names))


class TestBuildMismatchedArtifact:
    def test_the_worker_rejects_an_input_the_schema_lacks(self, model_dir: Path) -> None:
        """The default mismatch (loan_amount renamed loan_amount_eur) is refused by OnnxScorer.load."""
        build_mismatched_artifact(model_dir, promote=True)
        with pytest.raises(ModelLoadError, match="loan_amount_eur"):
            load_champion(model_dir)

    def test_the_worker_rejects_an_input_of_the_wrong_kind(self, model_dir: Path) -> None:
        """instalment_rate as a string input is refused for its kind."""
        build_mismatched_artifact(model_dir, version="mismatch-2", rename={}, as_text=["instalment_rate"], promote=True)
        with pytest.raises(ModelLoadError, match="instalment_rate"):
            load_champion(model_dir)
