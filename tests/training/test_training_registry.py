"""Specification of writing artifacts: files, the registry, champions and immutable versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from training import export, registry
from training.__main__ import main

Maker = Callable[..., export.Artifact]


def read_registry(out: Path) -> registry.Registry:
    return registry.parse((out / "registry.json").read_text())


class TestWrite:
    def test_writing_produces_the_onnx_file_its_sidecar_and_the_registry(
        self, artifact: export.Artifact, tmp_path: Path
    ) -> None:
        """The .onnx bytes, a sidecar naming them by sha256, and a registry entry are written."""
        path = export.write(artifact, tmp_path, promote=False)
        assert path.read_bytes() == artifact.onnx_bytes
        sidecar = json.loads((tmp_path / "german-credit-logreg-1.json").read_text())
        assert sidecar["sha256"] == export.sha256_of(path)
        assert sidecar["file"] == path.name
        assert sidecar["feature_names"] == [i["name"] for i in sidecar["inputs"]] == list(artifact.features)
        assert set(sidecar) >= {"metrics", "training_data_sha256", "trained_at", "seed"}
        assert read_registry(tmp_path)["models"]["german-credit-logreg-1"]["sha256"] == artifact.sha256

    def test_the_first_model_written_becomes_champion(self, artifact: export.Artifact, tmp_path: Path) -> None:
        """An empty registry takes the first model as champion even without --promote."""
        export.write(artifact, tmp_path, promote=False)
        assert read_registry(tmp_path)["champion"] == "german-credit-logreg-1"

    def test_a_new_version_does_not_displace_the_champion_without_promote(
        self, artifact: export.Artifact, make_artifact: Maker, tmp_path: Path
    ) -> None:
        """Version 2 is registered beside version 1, which stays champion."""
        export.write(artifact, tmp_path, promote=False)
        export.write(make_artifact(version="2"), tmp_path, promote=False)
        document = read_registry(tmp_path)
        assert document["champion"] == "german-credit-logreg-1"
        assert set(document["models"]) == {"german-credit-logreg-1", "german-credit-logreg-2"}

    def test_promote_makes_the_new_version_champion(
        self, artifact: export.Artifact, make_artifact: Maker, tmp_path: Path
    ) -> None:
        """With promote, version 2 becomes champion."""
        export.write(artifact, tmp_path, promote=False)
        export.write(make_artifact(version="2"), tmp_path, promote=True)
        assert read_registry(tmp_path)["champion"] == "german-credit-logreg-2"

    def test_rewriting_identical_bytes_is_allowed(self, artifact: export.Artifact, tmp_path: Path) -> None:
        """Re-exporting a version with the same bytes (a reproducible rebuild) succeeds and changes nothing."""
        export.write(artifact, tmp_path, promote=False)
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        export.write(artifact, tmp_path, promote=False)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    def test_a_released_version_is_never_overwritten_with_different_bytes(
        self, artifact: export.Artifact, make_artifact: Maker, tmp_path: Path
    ) -> None:
        """Different bytes under an existing version are refused and no file changes."""
        export.write(artifact, tmp_path, promote=False)
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        with pytest.raises(export.ExportError, match="immutable"):
            export.write(make_artifact(trained_at="2027-01-01"), tmp_path, promote=True)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    def test_a_version_that_cannot_be_part_of_a_file_name_is_refused(self, make_artifact: Maker) -> None:
        """A version with a path separator is rejected before anything is built."""
        with pytest.raises(export.ExportError, match="version"):
            make_artifact(version="../1")


class TestRegistryDocument:
    def test_a_registry_that_is_not_json_is_refused(self) -> None:
        """A corrupt registry.json raises RegistryError rather than being replaced."""
        with pytest.raises(registry.RegistryError, match="not JSON"):
            registry.parse("{")

    def test_a_champion_missing_from_models_is_refused(self) -> None:
        """A champion key with no entry is reported."""
        with pytest.raises(registry.RegistryError, match="champion"):
            registry.parse('{"champion": "m-1", "models": {}}')

    def test_registering_different_bytes_under_a_known_key_is_refused(self) -> None:
        """The registry itself also refuses to change a released version's sha256."""
        entry: registry.ModelEntry = {"name": "m", "version": "1", "file": "m-1.onnx", "sha256": "a", "metrics": {}}
        current = registry.register(registry.empty(), "m-1", entry, promote=False)
        with pytest.raises(registry.RegistryError, match="immutable"):
            registry.register(current, "m-1", {**entry, "sha256": "b"}, promote=False)


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
        """Only the models that exist can be asked for."""
        with pytest.raises(SystemExit):
            main(["train", "--model", "gbm"])
