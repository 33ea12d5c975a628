"""A model change in the registry is picked up, or refused with the old model still serving."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from streamer import metrics
from streamer.model.registry import FileRegistry, ModelEntry, RegistryUnreachable, champion
from streamer.model.reload import ModelSlot, ModelWatcher, load_entry
from training.testing import build_artifact

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
        assert ModelWatcher(FileRegistry(model_dir), slot).check() is False
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
        watcher = ModelWatcher(FileRegistry(model_dir), slot)

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

        assert ModelWatcher(FileRegistry(model_dir), slot).check() is False
        assert slot.current is serving

    def test_an_unreadable_registry_leaves_the_model_serving(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        (model_dir / "registry.json").write_text('{"champion": ')
        assert ModelWatcher(FileRegistry(model_dir), slot).check() is False
        assert slot.current is serving


class _Outage:
    """A registry that stops answering, then answers again with `entry`."""

    name = "fake"

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.down = False

    def champion(self) -> ModelEntry:
        if self.down:
            raise RegistryUnreachable("connection refused")
        return self.entry


class TestARegistryOutage:
    def test_an_unreachable_registry_keeps_the_model_serving_and_says_so_on_the_gauge(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        serving = slot.current
        registry = _Outage(champion(model_dir))
        watcher = ModelWatcher(registry, slot)
        failures = _failures("registry_unreadable")

        registry.down = True
        assert watcher.check() is False
        assert watcher.check() is False
        assert slot.current is serving
        assert metrics.MODEL_REGISTRY_UP._value.get() == 0
        assert _failures("registry_unreadable") == failures  # an outage is not a refused model

        registry.down = False
        assert watcher.check() is False
        assert metrics.MODEL_REGISTRY_UP._value.get() == 1

    def test_the_registry_answering_again_with_a_new_champion_swaps_it_in(self, model_dir: Path) -> None:
        slot = ModelSlot(load_entry(champion(model_dir)))
        registry = _Outage(champion(model_dir))
        watcher = ModelWatcher(registry, slot)
        registry.down = True
        watcher.check()
        build_artifact(model_dir, version="2", promote=True)
        registry.entry, registry.down = champion(model_dir), False

        assert watcher.check() is True
        assert slot.current.ref.version == "2"


def serving_bytes(model_dir: Path) -> bytes:
    return champion(model_dir).path.read_bytes()
