"""The shipped ONNX artifact loads only when it is exactly what the registry says it is."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import convert_model_to_external_data

from schemas import LoanApplication
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import ModelLoadError, OnnxScorer
from streamer.model.registry import ModelEntry, RegistryError, champion

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


class TestWhatTheRegistryMayName:
    """registry.json is edited by hand and by promotion; the sha256 it pins covers one file in the model
    directory, so it may name nothing outside that directory and nothing the file itself loads from elsewhere."""

    @pytest.mark.parametrize("where", ["parent", "absolute", "dotted", "symlink"])
    def test_a_file_outside_the_model_dir_is_refused(self, tmp_path: Path, where: str) -> None:
        models = Path(shutil.copytree(MODEL_DIR, tmp_path / "models"))
        shipped = champion(models)
        outside = tmp_path / "elsewhere.onnx"
        shutil.copy(shipped.path, outside)  # a good model: only its place makes it wrong
        named = {
            "parent": "../elsewhere.onnx",
            "absolute": str(outside),
            "dotted": "sub/../../elsewhere.onnx",
            "symlink": "link.onnx",
        }[where]
        if where == "symlink":
            (models / "link.onnx").symlink_to(outside)
        registry = json.loads((models / "registry.json").read_text())
        registry["models"][shipped.artifact_id]["file"] = named
        (models / "registry.json").write_text(json.dumps(registry))

        with pytest.raises(RegistryError, match="outside the model directory"):
            champion(models)

    def test_a_file_in_a_subfolder_of_the_model_dir_is_allowed(self, tmp_path: Path) -> None:
        models = Path(shutil.copytree(MODEL_DIR, tmp_path / "models"))
        shipped = champion(models)
        (models / "archive").mkdir()
        shutil.move(shipped.path, models / "archive" / shipped.path.name)
        registry = json.loads((models / "registry.json").read_text())
        registry["models"][shipped.artifact_id]["file"] = f"archive/{shipped.path.name}"
        (models / "registry.json").write_text(json.dumps(registry))

        moved = champion(models)
        assert _load(moved.path, moved).ref.sha256 == shipped.sha256

    def test_an_onnx_file_with_external_data_is_refused(self, entry: ModelEntry, tmp_path: Path) -> None:
        model = onnx.load_model(str(entry.path))
        convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        onnx.save_model(model, str(tmp_path / "m.onnx"))
        assert (tmp_path / "weights.bin").stat().st_size > 0  # the weights really are in the other file
        blob = (tmp_path / "m.onnx").read_bytes()

        with pytest.raises(ModelLoadError, match="external data") as refused:
            _load(tmp_path / "m.onnx", entry, sha256=hashlib.sha256(blob).hexdigest())
        assert refused.value.reason == "external_data"
