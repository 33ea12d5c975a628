"""The shipped ONNX artifact loads only when it is exactly what the registry says it is."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from schemas import LoanApplication
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import ModelLoadError, OnnxScorer
from streamer.model.registry import ModelEntry, champion

MODEL_DIR = Path(__file__).resolve().parents[2] / "onnx_models"


@pytest.fixture
def entry() -> ModelEntry:
    return champion(MODEL_DIR)


def _load(path: Path, entry: ModelEntry, sha256: str | None = None) -> OnnxScorer:
    return OnnxScorer.load(path, entry.name, entry.version, sha256 or entry.sha256)


class TestOnnxScorer:
    def test_the_champion_scores_a_batch_in_one_call(self, entry: ModelEntry) -> None:
        scorer = _load(entry.path, entry)
        factory = ApplicationFactory(seed=9)
        batch = [LoanApplication.model_validate(factory.valid(), strict=False) for _ in range(64)]
        scores = scorer.score(batch)
        assert scores.probability_of_default.shape == (64,)
        assert np.all((scores.probability_of_default >= 0) & (scores.probability_of_default <= 1))
        assert scores.contributions.shape == (64, len(scorer.feature_names))
        assert scorer.ref.sha256 == entry.sha256

    def test_a_file_whose_sha256_differs_from_the_registry_is_refused(self, entry: ModelEntry) -> None:
        with pytest.raises(ModelLoadError, match="sha256"):
            _load(entry.path, entry, sha256="0" * 64)

    def test_a_truncated_file_is_refused(self, entry: ModelEntry, tmp_path: Path) -> None:
        truncated = tmp_path / "m.onnx"
        truncated.write_bytes(entry.path.read_bytes()[:500])
        with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
            _load(truncated, entry, sha256=hashlib.sha256(truncated.read_bytes()).hexdigest())

    def test_a_missing_file_is_refused(self, entry: ModelEntry, tmp_path: Path) -> None:
        with pytest.raises(ModelLoadError, match="cannot read"):
            _load(tmp_path / "absent.onnx", entry)

    def test_the_registry_points_at_a_file_in_the_model_dir(self, entry: ModelEntry, tmp_path: Path) -> None:
        shutil.copytree(MODEL_DIR, tmp_path / "models")
        moved = champion(tmp_path / "models")
        assert moved.path.parent == tmp_path / "models"
        assert _load(moved.path, moved).ref.version == entry.version
