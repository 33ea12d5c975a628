"""MLflow as the fleet's registry, against a real MLflow server: `python -m training` registers and moves
the `champion` alias, and the worker's MLflow backend reads it, downloads and caches the artifact."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient

from streamer.config import Settings
from streamer.local.processes import free_port
from streamer.model.mlflow_registry import MlflowRegistry
from streamer.model.registry import RegistryError, RegistryUnreachable, artifact_by_sha256
from streamer.model.reload import load_entry
from tests.conftest import REPO, TANSU_ONLY
from tests.integration.mlflow_server import MlflowServer
from training.__main__ import main as training_cli
from training.testing import build_artifact

pytestmark = [pytest.mark.integration, TANSU_ONLY]

SHIPPED_SHA256 = json.loads((REPO / "onnx_models" / "registry.json").read_text())["models"][
    "german-credit-logreg-1"]["sha256"]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPO / "onnx_models", tmp_path / "models"))


@pytest.fixture
def model_name(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A registered model of the test's own, with MLFLOW_TRACKING_URI pointing at the server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return f"credit-{uuid.uuid4().hex[:8]}"


def _cli(*argv: str) -> None:
    assert training_cli(list(argv)) == 0, argv


class TestTheTrainingCommands:
    def test_importing_the_default_model_makes_it_champion_with_its_sha256(
        self, mlflow_server: MlflowServer, model_name: str
    ) -> None:
        _cli("mlflow-import-default", "--registered-model", model_name, "--by", "ops", "--reason", "bootstrap")

        client = MlflowClient(mlflow_server.url)
        champion = client.get_model_version_by_alias(model_name, "champion")
        assert champion.tags["sha256"] == SHIPPED_SHA256
        assert champion.tags["artifact_id"] == "german-credit-logreg-1"
        assert (champion.tags["promote_by"], champion.tags["promote_reason"]) == ("ops", "bootstrap")
        _cli("mlflow-import-default", "--registered-model", model_name)  # again: the same version, no new one
        assert len(client.search_model_versions(f"name = '{model_name}'")) == 1

    def test_train_logs_the_run_and_registers_a_version_that_promote_and_rollback_move_the_alias_to(
        self, mlflow_server: MlflowServer, model_name: str, model_dir: Path
    ) -> None:
        _cli("mlflow-import-default", "--registered-model", model_name, "--models", str(model_dir))
        _cli("train", "--out", str(model_dir), "--version", "2", "--cv-repeats", "1", "--registered-model",
             model_name)
        client = MlflowClient(mlflow_server.url)
        versions = {v.tags["artifact_id"]: v for v in client.search_model_versions(f"name = '{model_name}'")}
        trained = versions["german-credit-logreg-2"]
        assert trained.tags["sha256"] == hashlib.sha256(
            (model_dir / "german-credit-logreg-2.onnx").read_bytes()).hexdigest()
        run = client.get_run(str(trained.run_id))
        assert run.data.params["cv_repeats"] == "1" and run.data.params["model"] == "logreg"
        assert run.data.metrics["cv_auc_mean"] > 0.7
        card = {a.path for a in client.list_artifacts(run.info.run_id, "card")}
        assert {"card/german-credit-logreg-2.md", "card/german-credit-logreg-2-roc.png"} <= card
        assert client.get_model_version_by_alias(model_name, "champion").tags["artifact_id"] == "german-credit-logreg-1"

        _cli("promote", "german-credit-logreg-2", "--registered-model", model_name, "--by", "ana",
             "--reason", "better calibration")
        champion = client.get_model_version_by_alias(model_name, "champion")
        assert champion.tags["artifact_id"] == "german-credit-logreg-2"
        assert (champion.tags["promote_by"], champion.tags["promote_reason"]) == ("ana", "better calibration")

        _cli("rollback", "--registered-model", model_name, "--reason", "drift")
        assert client.get_model_version_by_alias(model_name, "champion").tags["artifact_id"] == "german-credit-logreg-1"
        history = json.loads(client.get_registered_model(model_name).tags["champion_history"])
        assert [(c["event"], c["champion"]) for c in history] == [
            ("promote", "german-credit-logreg-1"), ("promote", "german-credit-logreg-2"),
            ("rollback", "german-credit-logreg-1")]

        _cli("challenger", "2", "--registered-model", model_name)
        challenger = client.get_model_version_by_alias(model_name, "challenger")
        assert challenger.tags["artifact_id"] == "german-credit-logreg-2"

    def test_a_released_artifact_id_with_different_bytes_is_refused(
        self, model_name: str, model_dir: Path, tmp_path: Path
    ) -> None:
        _cli("mlflow-import-default", "--registered-model", model_name, "--models", str(model_dir))
        other = Path(shutil.copytree(REPO / "onnx_models", tmp_path / "other"))
        (other / "registry.json").write_text((other / "registry.json").read_text().replace(SHIPPED_SHA256, "0" * 64))
        (other / "german-credit-logreg-1.onnx").write_bytes(b"not the released bytes")

        assert training_cli(["mlflow-import-default", "--registered-model", model_name, "--models", str(other)]) == 1


class TestTheWorkersMlflowBackend:
    def test_it_returns_the_champion_downloaded_into_a_cache_keyed_by_sha256(
        self, mlflow_server: MlflowServer, model_name: str, tmp_path: Path
    ) -> None:
        _cli("mlflow-import-default", "--registered-model", model_name)
        registry = MlflowRegistry(mlflow_server.url, model_name, tmp_path / "cache", timeout_s=5)

        entry = registry.champion()
        assert entry.path == tmp_path / "cache" / f"{SHIPPED_SHA256}.onnx"
        assert (entry.artifact_id, entry.name, entry.version) == ("german-credit-logreg-1", "german-credit-logreg", "1")
        assert load_entry(entry).ref.sha256 == SHIPPED_SHA256  # verified exactly as a file-registry model
        assert registry.champion() is entry  # the alias did not move: nothing downloaded again

    def test_it_follows_a_promotion(self, mlflow_server: MlflowServer, model_name: str, model_dir: Path,
                                    tmp_path: Path) -> None:
        _cli("mlflow-import-default", "--registered-model", model_name, "--models", str(model_dir))
        key = build_artifact(model_dir, version="2")
        registry = MlflowRegistry(mlflow_server.url, model_name, tmp_path / "cache", timeout_s=5)
        assert registry.champion().version == "1"

        from training import mlflow_store  # noqa: PLC0415  (the test's own process talks to MLflow as training does)

        client = mlflow_store.client(mlflow_server.url)
        mlflow_store.log_and_register(client, model_dir, key, {}, model_name)
        mlflow_store.promote(client, model_name, key, mlflow_store.Actor("test", "follow"), "2026-12-03T00:00:00Z")
        assert registry.champion().version == "2"

    def test_any_version_is_found_by_its_sha256_after_the_alias_moved_on_and_the_image_default_without_mlflow(
        self, mlflow_server: MlflowServer, model_name: str, model_dir: Path, tmp_path: Path
    ) -> None:
        """What `streamer decisions reproduce` asks: the artifact that made a decision, by its sha256."""
        from training import mlflow_store  # noqa: PLC0415  (the test's own process talks to MLflow as training does)

        client = mlflow_store.client(mlflow_server.url)
        for version in ("2", "3"):  # 2 is champion, then replaced by 3
            key = build_artifact(model_dir, version=version)
            mlflow_store.log_and_register(client, model_dir, key, {}, model_name)
            mlflow_store.promote(client, model_name, key, mlflow_store.Actor("test", "replace"), "2026-12-03T00:00:00Z")
            if version == "2":
                replaced = hashlib.sha256((model_dir / f"{key}.onnx").read_bytes()).hexdigest()
        registry = MlflowRegistry(mlflow_server.url, model_name, tmp_path / "cache", timeout_s=5)
        assert registry.champion().version == "3"

        entry = registry.by_sha256(replaced)
        assert (entry.version, entry.path) == ("2", tmp_path / "cache" / f"{replaced}.onnx")
        assert load_entry(entry).ref.sha256 == replaced
        with pytest.raises(RegistryError):
            registry.by_sha256("0" * 64)
        settings = Settings(model_registry="mlflow", mlflow_tracking_uri=mlflow_server.url,
                            mlflow_model_name=model_name, model_dir=REPO / "onnx_models", data_dir=tmp_path / "data")
        assert artifact_by_sha256(settings, replaced).version == "2"
        # Never imported into this registered model: the image's default, from the model directory.
        assert artifact_by_sha256(settings, SHIPPED_SHA256).path == REPO / "onnx_models" / "german-credit-logreg-1.onnx"

    def test_a_model_without_a_champion_alias_is_a_registry_error_not_an_outage(
        self, mlflow_server: MlflowServer, tmp_path: Path
    ) -> None:
        registry = MlflowRegistry(mlflow_server.url, f"absent-{uuid.uuid4().hex[:8]}", tmp_path, timeout_s=5)
        with pytest.raises(RegistryError) as raised:
            registry.champion()
        assert not isinstance(raised.value, RegistryUnreachable)

    def test_a_server_that_does_not_answer_is_unreachable_at_once_not_after_minutes(self, tmp_path: Path) -> None:
        registry = MlflowRegistry(f"http://127.0.0.1:{free_port()}", "german-credit", tmp_path, timeout_s=2)
        started = time.monotonic()
        with pytest.raises(RegistryUnreachable):
            registry.champion()
        assert time.monotonic() - started < 5
