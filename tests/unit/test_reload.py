"""A model change in the registry is picked up, or refused with the old model still serving."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from streamer import metrics
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, ModelWatcher, load_entry

SHIPPED = Path(__file__).resolve().parents[2] / "onnx_models"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "models"))


def _point_champion_at(model_dir: Path, artifact_bytes: bytes, version: str = "2") -> None:
    """Register `artifact_bytes` as a new champion, with the sha256 of exactly those bytes."""
    registry = json.loads((model_dir / "registry.json").read_text())
    old = registry["models"][registry["champion"]]
    (model_dir / f"candidate-{version}.onnx").write_bytes(artifact_bytes)
    registry["models"][f"candidate-{version}"] = {
        **old, "version": version, "file": f"candidate-{version}.onnx",
        "sha256": hashlib.sha256(artifact_bytes).hexdigest(),
    }
    registry["champion"] = f"candidate-{version}"
    (model_dir / "registry.json").write_text(json.dumps(registry))


def _failures(reason: str) -> float:
    return float(metrics.MODEL_LOAD_FAILURES.labels(reason)._value.get())


class TestModelWatcher:
    def test_an_unchanged_registry_keeps_the_same_session(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        assert ModelWatcher(model_dir, slot).check() is False
        assert slot.current is serving

    @pytest.mark.parametrize(
        ("make_bytes", "reason"),
        [
            (lambda good: good[: len(good) // 2], "not_onnx"),  # truncated
            (lambda good: b"\x00garbage" * 100, "not_onnx"),  # corrupt
            (lambda good: good, "registry_mismatch"),  # same file registered under another version
        ],
    )
    def test_a_bad_candidate_is_refused_and_the_old_model_keeps_serving(
        self, model_dir: Path, make_bytes: object, reason: str
    ) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        good = serving_bytes(model_dir)
        _point_champion_at(model_dir, make_bytes(good))  # type: ignore[operator]
        before = _failures(reason)
        watcher = ModelWatcher(model_dir, slot)

        assert watcher.check() is False
        assert watcher.check() is False  # refused once, not re-tried and re-counted every poll
        assert slot.current is serving
        assert _failures(reason) == before + 1

    def test_a_file_that_does_not_match_the_registry_sha256_is_refused(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        _point_champion_at(model_dir, serving_bytes(model_dir), version="1")
        registry = json.loads((model_dir / "registry.json").read_text())
        registry["models"]["candidate-1"]["sha256"] = "f" * 64
        (model_dir / "registry.json").write_text(json.dumps(registry))

        assert ModelWatcher(model_dir, slot).check() is False
        assert slot.current is serving

    def test_an_unreadable_registry_leaves_the_model_serving(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        (model_dir / "registry.json").write_text('{"champion": ')
        assert ModelWatcher(model_dir, slot).check() is False
        assert slot.current is serving


def serving_bytes(model_dir: Path) -> bytes:
    return champion(model_dir).path.read_bytes()
