"""Specification of the model directory: files, the registry, promote/rollback, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from training import export, registry, store
from training.__main__ import main

Maker = Callable[..., export.Artifact]

# Polls registry.json the way the worker does (streamer.model.registry.champion) until `stop` appears, then
# prints how many reads it made and every failure it saw.
READER = """
import json, sys
from pathlib import Path
from streamer.model.registry import RegistryError, champion
directory, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads, failures = 0, []
Path(f"{stop}.ready").touch()
while not stop.exists():
    try:
        champion(directory)
    except RegistryError as error:
        failures.append(str(error)[:200])
    reads += 1
print(json.dumps({"reads": reads, "failures": failures}))
"""


def wait_until_polling(reader: subprocess.Popen[str], stop: Path) -> None:
    """Block until the reader process has started its loop (it touches `<stop>.ready`)."""
    deadline = time.monotonic() + 30
    while not Path(f"{stop}.ready").exists():
        assert reader.poll() is None and time.monotonic() < deadline, "the reader did not start"
        time.sleep(0.01)


def read_registry(out: Path) -> registry.Registry:
    return registry.parse((out / "registry.json").read_text())


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.fixture
def two_versions(artifact: export.Artifact, make_artifact: Maker, tmp_path: Path) -> Path:
    """A model directory with versions 1 (champion) and 2 (registered, not promoted)."""
    store.publish(artifact, tmp_path, promote=False)
    store.publish(make_artifact(version="2"), tmp_path, promote=False)
    return tmp_path


class TestPublish:
    def test_publishing_writes_the_onnx_file_its_sidecar_and_the_registry(
        self, artifact: export.Artifact, tmp_path: Path
    ) -> None:
        """The .onnx bytes, a sidecar naming them by sha256, and a registry entry are written."""
        path = store.publish(artifact, tmp_path, promote=False)
        assert path.read_bytes() == artifact.onnx_bytes
        sidecar = json.loads((tmp_path / "german-credit-logreg-1.json").read_text())
        assert sidecar["sha256"] == export.sha256_of(path)
        assert sidecar["file"] == path.name
        assert sidecar["feature_names"] == [i["name"] for i in sidecar["inputs"]] == list(artifact.features)
        assert set(sidecar) >= {"metrics", "training_data_sha256", "trained_at", "seed", "model", "contributions"}
        entry = read_registry(tmp_path)["models"]["german-credit-logreg-1"]
        assert (entry["sha256"], entry["file"], entry["version"]) == (artifact.sha256, path.name, "1")

    def test_the_first_model_written_becomes_champion_with_a_history_entry(
        self, artifact: export.Artifact, tmp_path: Path
    ) -> None:
        """An empty registry takes the first model as champion even without promote, and records it."""
        store.publish(artifact, tmp_path, promote=False)
        document = read_registry(tmp_path)
        assert document["champion"] == "german-credit-logreg-1"
        assert [(e["event"], e["champion"], e["previous"]) for e in document["history"]] == [
            ("promote", "german-credit-logreg-1", None)
        ]
        assert document["challengers"] == []

    def test_a_new_version_does_not_displace_the_champion_without_promote(self, two_versions: Path) -> None:
        """Version 2 is registered beside version 1, which stays champion."""
        document = read_registry(two_versions)
        assert document["champion"] == "german-credit-logreg-1"
        assert set(document["models"]) == {"german-credit-logreg-1", "german-credit-logreg-2"}

    def test_publishing_with_promote_makes_the_new_version_champion(
        self, artifact: export.Artifact, make_artifact: Maker, tmp_path: Path
    ) -> None:
        """With promote, version 2 becomes champion."""
        store.publish(artifact, tmp_path, promote=False)
        store.publish(make_artifact(version="2"), tmp_path, promote=True)
        assert read_registry(tmp_path)["champion"] == "german-credit-logreg-2"

    def test_republishing_identical_bytes_changes_nothing(self, artifact: export.Artifact, tmp_path: Path) -> None:
        """Re-exporting a version with the same bytes (a reproducible rebuild) succeeds and changes no file."""
        store.publish(artifact, tmp_path, promote=False)
        before = files(tmp_path)
        store.publish(artifact, tmp_path, promote=False)
        assert files(tmp_path) == before

    def test_a_released_version_is_never_overwritten_with_different_bytes(
        self, artifact: export.Artifact, make_artifact: Maker, tmp_path: Path
    ) -> None:
        """Different bytes under an existing version are refused and no file changes."""
        store.publish(artifact, tmp_path, promote=False)
        before = files(tmp_path)
        with pytest.raises(export.ExportError, match="immutable"):
            store.publish(make_artifact(trained_at="2027-01-01"), tmp_path, promote=True)
        assert files(tmp_path) == before

    def test_a_version_that_cannot_be_part_of_a_file_name_is_refused(self, make_artifact: Maker) -> None:
        """A version with a path separator is rejected before anything is built."""
        with pytest.raises(export.ExportError, match="version"):
            make_artifact(version="../1")

    def test_no_temporary_files_are_left_behind(self, two_versions: Path) -> None:
        """Atomic writes rename their temporary files into place: none remain."""
        assert not [p.name for p in two_versions.iterdir() if p.name.startswith(".")]


class TestPromoteAndRollback:
    def test_promote_moves_the_champion_and_records_the_change(self, two_versions: Path) -> None:
        """`promote german-credit-logreg-2` makes it champion; history names the previous one."""
        assert main(["promote", "german-credit-logreg-2", "--models", str(two_versions)]) == 0
        document = read_registry(two_versions)
        assert document["champion"] == "german-credit-logreg-2"
        assert document["history"][-1]["previous"] == "german-credit-logreg-1"

    def test_a_bare_version_is_accepted_when_it_names_one_model(self, two_versions: Path) -> None:
        """`promote 2` resolves to german-credit-logreg-2."""
        assert main(["promote", "2", "--models", str(two_versions)]) == 0
        assert read_registry(two_versions)["champion"] == "german-credit-logreg-2"

    def test_rollback_returns_to_the_previous_champion_and_keeps_history(self, two_versions: Path) -> None:
        """After promoting 2, rollback restores 1; the history keeps all three changes."""
        main(["promote", "german-credit-logreg-2", "--models", str(two_versions)])
        assert main(["rollback", "--models", str(two_versions)]) == 0
        document = read_registry(two_versions)
        assert document["champion"] == "german-credit-logreg-1"
        assert [e["event"] for e in document["history"]] == ["promote", "promote", "rollback"]
        assert set(document["models"]) == {"german-credit-logreg-1", "german-credit-logreg-2"}

    def test_repeated_rollbacks_walk_back_through_earlier_champions(
        self, two_versions: Path, make_artifact: Maker
    ) -> None:
        """1 -> 2 -> 3, then rollback twice: 2, then 1; a third rollback has nowhere to go."""
        store.publish(make_artifact(version="3"), two_versions, promote=False)
        store.promote(two_versions, "german-credit-logreg-2")
        store.promote(two_versions, "german-credit-logreg-3")
        assert store.rollback(two_versions)["champion"] == "german-credit-logreg-2"
        assert store.rollback(two_versions)["champion"] == "german-credit-logreg-1"
        with pytest.raises(registry.RegistryError, match="no previous champion"):
            store.rollback(two_versions)

    def test_rollback_with_a_single_champion_fails_and_changes_nothing(
        self, artifact: export.Artifact, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With no earlier champion, rollback exits 1 with a message and leaves the file as it was."""
        store.publish(artifact, tmp_path, promote=False)
        before = files(tmp_path)
        assert main(["rollback", "--models", str(tmp_path)]) == 1
        assert "no previous champion" in capsys.readouterr().err
        assert files(tmp_path) == before

    def test_promoting_an_unknown_model_fails_naming_the_known_ones(
        self, two_versions: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An id the registry lacks is refused; the message lists what is registered."""
        assert main(["promote", "german-credit-gbm-9", "--models", str(two_versions)]) == 1
        assert "german-credit-logreg-2" in capsys.readouterr().err
        assert read_registry(two_versions)["champion"] == "german-credit-logreg-1"

    def test_promoting_a_model_whose_file_was_altered_is_refused(self, two_versions: Path) -> None:
        """The worker would refuse a file whose sha256 differs from the registry, so promote refuses first."""
        (two_versions / "german-credit-logreg-2.onnx").write_bytes(b"tampered")
        with pytest.raises(registry.RegistryError, match="sha256"):
            store.promote(two_versions, "german-credit-logreg-2")
        assert read_registry(two_versions)["champion"] == "german-credit-logreg-1"

    def test_promoting_the_champion_again_changes_nothing(self, two_versions: Path) -> None:
        """Promoting the current champion leaves the file byte-identical (no history entry)."""
        before = (two_versions / "registry.json").read_bytes()
        store.promote(two_versions, "german-credit-logreg-1")
        assert (two_versions / "registry.json").read_bytes() == before

    def test_a_registry_written_before_history_was_kept_can_still_roll_back(self, two_versions: Path) -> None:
        """A legacy file (champion and models only) promotes to 2 and rolls back to 1."""
        legacy = read_registry(two_versions)
        (two_versions / "registry.json").write_text(
            json.dumps({"champion": legacy["champion"], "models": legacy["models"]})
        )
        store.promote(two_versions, "german-credit-logreg-2")
        assert store.rollback(two_versions)["champion"] == "german-credit-logreg-1"


class TestAtomicWrites:
    def test_a_reader_polling_like_the_worker_never_sees_a_partial_registry(self, two_versions: Path) -> None:
        """While 150 promotions and rollbacks rewrite registry.json, a separate process reading it in a
        tight loop with the worker's own reader never fails to parse it or to find the champion."""
        stop = two_versions.parent / f"{two_versions.name}.stop"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(two_versions), str(stop)], stdout=subprocess.PIPE, text=True
        )
        try:
            wait_until_polling(reader, stop)
            for _ in range(75):
                store.promote(two_versions, "german-credit-logreg-2")
                store.rollback(two_versions)
        finally:
            stop.touch()
            output, _ = reader.communicate(timeout=30)
        result = json.loads(output)
        assert result["failures"] == []
        assert result["reads"] > 100
        assert len(read_registry(two_versions)["history"]) == 151

    def test_the_reader_does_catch_a_writer_that_rewrites_the_file_in_place(self, two_versions: Path) -> None:
        """Control: the same reader sees failures when the file is truncated and rewritten non-atomically,
        so the test above would catch a non-atomic writer."""
        stop = two_versions.parent / f"{two_versions.name}.stop"
        text = (two_versions / "registry.json").read_text()
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(two_versions), str(stop)], stdout=subprocess.PIPE, text=True
        )
        try:
            wait_until_polling(reader, stop)
            for _ in range(50):
                with open(two_versions / "registry.json", "w") as torn:
                    torn.write(text[: len(text) // 2])
                    torn.flush()
                    time.sleep(0.002)
                    torn.write(text[len(text) // 2 :])
        finally:
            stop.touch()
            output, _ = reader.communicate(timeout=30)
        assert json.loads(output)["failures"]


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
        current = registry.register(registry.empty(), "m-1", entry, promote=False, at="t")
        with pytest.raises(registry.RegistryError, match="immutable"):
            registry.register(current, "m-1", {**entry, "sha256": "b"}, promote=False, at="t")

    def test_the_worker_keys_are_kept(self, two_versions: Path) -> None:
        """champion and models[id].{name, version, file, sha256, metrics} are where the worker reads them."""
        document = json.loads((two_versions / "registry.json").read_text())
        entry = document["models"][document["champion"]]
        assert {"name", "version", "file", "sha256", "metrics"} <= set(entry)
        assert isinstance(entry["version"], str)

    def test_an_ambiguous_bare_version_is_refused(self) -> None:
        """Version "1" of two model names needs the full artifact id."""
        entry: registry.ModelEntry = {"name": "a", "version": "1", "file": "a-1.onnx", "sha256": "x", "metrics": {}}
        document = registry.register(registry.empty(), "a-1", entry, promote=False, at="t")
        document = registry.register(document, "b-1", {**entry, "name": "b", "file": "b-1.onnx"}, promote=False, at="t")
        with pytest.raises(registry.RegistryError, match="ambiguous"):
            registry.resolve(document, "1")
