"""MLflow as the fleet's registry: what `python -m training` does when MLFLOW_TRACKING_URI is set.

`train` logs a run (parameters, metrics, the card, its plots and evaluation, the sidecar and the `.onnx` under
`model/`) and registers it as a version of one registered model, tagged with what the worker needs
(streamer/model/mlflow_registry.py reads the same tags). The worker serves the version under the alias
`champion`; `promote` and `rollback` move that alias and record who and why, on the version (tags) and in
the registered model's `champion_history` tag, which `rollback` replays as the file registry does.

A version is a released artifact: registering different bytes under an artifact id already registered is
refused, and registering the same bytes again returns the existing version.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from training import registry
from training.mlflow_cli import DEFAULT_MODEL_NAME

EXPERIMENT: Final = "streamer-credit-risk"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
HISTORY_TAG: Final = "champion_history"
HISTORY_KEPT: Final = 40  # a tag value holds a few KB: the newest changes are kept
ARTIFACT_DIR: Final = "model"


@dataclass(frozen=True)
class Actor:
    """Who changes the champion, and why; recorded with the change."""

    by: str
    reason: str


def client(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def log_and_register(
    mlf: MlflowClient,
    model_dir: Path,
    key: str,
    params: Mapping[str, object],
    model_name: str = DEFAULT_MODEL_NAME,
) -> ModelVersion:
    """Log `key`'s files from `model_dir` as a run and register it; the existing version if already registered."""
    entry = registry.parse((model_dir / registry.FILE_NAME).read_text(encoding="utf-8"))["models"][key]
    existing = find_version(mlf, model_name, key)
    if existing is not None:
        if existing.tags.get("sha256") != entry["sha256"]:
            raise registry.RegistryError(
                f"{key} is already registered in MLflow ({model_name} version {existing.version}) with sha256 "
                f"{existing.tags.get('sha256')}; the new artifact differs ({entry['sha256']}). Released versions "
                "are immutable: choose another --version."
            )
        return existing
    experiment = mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=key) as run:
        mlflow.log_params({name: str(value) for name, value in params.items()})
        mlflow.log_metrics({name: float(value) for name, value in entry["metrics"].items()})
        mlflow.set_tags({"artifact_id": key, "sha256": entry["sha256"]})
        mlflow.log_artifact(str(model_dir / entry["file"]), artifact_path=ARTIFACT_DIR)
        for attachment in sorted(model_dir.glob(f"{key}*")):
            if attachment.name != entry["file"]:
                mlflow.log_artifact(str(attachment), artifact_path="card")
        run_id = run.info.run_id
    try:
        mlf.create_registered_model(model_name, description="Loan-default models served by streamer")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {
        "sha256": entry["sha256"],
        "artifact_id": key,
        "artifact_name": entry["name"],
        "artifact_version": str(entry["version"]),
        "artifact_path": f"{ARTIFACT_DIR}/{entry['file']}",
        "model_family": entry.get("model", ""),
        "trained_at": entry.get("trained_at", ""),
    }
    return mlf.create_model_version(model_name, f"runs:/{run_id}/{ARTIFACT_DIR}", run_id=run_id, tags=tags)


def find_version(mlf: MlflowClient, model_name: str, reference: str) -> ModelVersion | None:
    """The version registered for an artifact id (or a bare artifact version naming exactly one)."""
    try:
        versions = mlf.search_model_versions(f"name = '{_quoted(model_name)}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    exact = [v for v in versions if v.tags.get("artifact_id") == reference]
    by_version = [v for v in versions if v.tags.get("artifact_version") == reference]
    matches = exact or by_version
    if len(matches) > 1:
        ids = sorted(str(v.tags.get("artifact_id")) for v in matches)
        raise registry.RegistryError(f"{reference!r} is ambiguous in MLflow: {ids}; give the artifact id")
    return matches[0] if matches else None


def alias_version(mlf: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    try:
        return mlf.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def promote(mlf: MlflowClient, model_name: str, reference: str, actor: Actor, at: str) -> tuple[str, str | None]:
    """Point `champion` at the referenced artifact after checking its bytes; (new, previous) artifact ids."""
    version = _required(mlf, model_name, reference)
    return _move_champion(mlf, model_name, version, "promote", actor, at)


def rollback(mlf: MlflowClient, model_name: str, actor: Actor, at: str) -> tuple[str, str | None]:
    """Point `champion` back at the champion before the current one (history replayed, rollbacks popped)."""
    current = alias_version(mlf, model_name, CHAMPION)
    document: registry.Registry = {
        "champion": current.tags.get("artifact_id") if current is not None else None,
        "challengers": [], "history": history(mlf, model_name), "models": {},
    }
    stack = registry.champion_stack(document)
    if len(stack) < 2:
        raise registry.RegistryError("no previous champion to roll back to")
    return _move_champion(mlf, model_name, _required(mlf, model_name, stack[-2]), "rollback", actor, at)


def set_challenger(mlf: MlflowClient, model_name: str, reference: str, actor: Actor, at: str) -> str:
    version = _required(mlf, model_name, reference)
    mlf.set_registered_model_alias(model_name, CHALLENGER, version.version)
    _record_on_version(mlf, model_name, version, "challenger", actor, at)
    return str(version.tags.get("artifact_id"))


def history(mlf: MlflowClient, model_name: str) -> list[registry.ChampionChange]:
    tags = mlf.get_registered_model(model_name).tags
    changes: list[registry.ChampionChange] = json.loads(tags.get(HISTORY_TAG, "[]"))
    return changes


def _move_champion(
    mlf: MlflowClient, model_name: str, version: ModelVersion, event: str, actor: Actor, at: str
) -> tuple[str, str | None]:
    verify_artifact(mlf, version)
    key = str(version.tags.get("artifact_id"))
    current = alias_version(mlf, model_name, CHAMPION)
    previous = current.tags.get("artifact_id") if current is not None else None
    if previous == key:
        return key, previous
    _record_on_version(mlf, model_name, version, event, actor, at)  # who and why before the fleet follows
    mlf.set_registered_model_alias(model_name, CHAMPION, version.version)
    change = {"event": event, "champion": key, "previous": previous, "at": at, "by": actor.by, "reason": actor.reason}
    kept: list[Mapping[str, object]] = [*history(mlf, model_name), change][-HISTORY_KEPT:]
    mlf.set_registered_model_tag(model_name, HISTORY_TAG, json.dumps(kept, separators=(",", ":")))
    return key, previous


def _record_on_version(
    mlf: MlflowClient, model_name: str, version: ModelVersion, event: str, actor: Actor, at: str
) -> None:
    for name, value in ((f"{event}_by", actor.by), (f"{event}_reason", actor.reason), (f"{event}_at", at)):
        mlf.set_model_version_tag(model_name, version.version, name, value)


def verify_artifact(mlf: MlflowClient, version: ModelVersion) -> None:
    """Refuse to serve a version whose artifact is missing or differs from its sha256 tag (the worker would)."""
    path, expected = version.tags.get("artifact_path"), version.tags.get("sha256")
    if not path or not expected or not version.run_id:
        raise registry.RegistryError(f"version {version.version} lacks the artifact_path or sha256 tag, or its run")
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(mlf.download_artifacts(version.run_id, path, scratch))
        actual = hashlib.sha256(local.read_bytes()).hexdigest()
    if actual != expected:
        raise registry.RegistryError(f"version {version.version}: artifact sha256 {actual}, its tag says {expected}")


def _required(mlf: MlflowClient, model_name: str, reference: str) -> ModelVersion:
    version = find_version(mlf, model_name, reference)
    if version is None:
        raise registry.RegistryError(f"no version of {model_name!r} in MLflow for {reference!r}")
    return version


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")
