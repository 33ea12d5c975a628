"""Where the champion comes from: one interface, two backends.

`FileRegistry` reads onnx_models/registry.json (the embedded stack, offline use, and the default model baked
into the image); `streamer.model.mlflow_registry.MlflowRegistry` follows the `champion` alias of a model in
an MLflow registry, for a fleet. Either gives a `ModelEntry`: a local file and the sha256 it must have, which
the worker verifies the same way whatever the backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streamer.config import Settings

REGISTRY_FILE = "registry.json"


class RegistryError(Exception):
    """The registry answered, but names no usable champion (malformed, missing alias or tag)."""


class RegistryUnreachable(RegistryError):
    """The registry did not answer (network, timeout, server error): the serving model stays."""


@dataclass(frozen=True)
class ModelEntry:
    artifact_id: str
    name: str
    version: str
    path: Path
    sha256: str


class ModelRegistry(Protocol):
    """What the worker asks of a registry."""

    name: str

    def champion(self) -> ModelEntry:
        """The champion, its artifact available at `path`; RegistryError (RegistryUnreachable) otherwise."""
        ...


class FileRegistry:
    """registry.json in a model directory."""

    name = "file"

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def champion(self) -> ModelEntry:
        return champion(self.model_dir)


def open_registry(settings: Settings) -> ModelRegistry:
    """The backend STREAMER_MODEL_REGISTRY names; MLflow's client is imported only when it is used."""
    if settings.model_registry == "mlflow":
        from streamer.model.mlflow_registry import MlflowRegistry  # noqa: PLC0415  (a slow, optional import)

        return MlflowRegistry.from_settings(settings)
    return FileRegistry(settings.model_dir)


def artifact_by_sha256(settings: Settings, sha256: str) -> ModelEntry:
    """Any registered artifact with this sha256, champion or not, for re-scoring a decision it made: from the
    MLflow registry when STREAMER_MODEL_REGISTRY=mlflow (the model directory's registry.json if MLflow has it
    not: the image's default model), else from registry.json."""
    if settings.model_registry == "mlflow":
        from streamer.model.mlflow_registry import MlflowRegistry  # noqa: PLC0415  (a slow, optional import)

        try:
            return MlflowRegistry.from_settings(settings).by_sha256(sha256)
        except RegistryError as in_mlflow:
            try:
                return by_sha256(settings.model_dir, sha256)
            except RegistryError as in_file:
                raise RegistryError(f"{in_mlflow}; {in_file}") from in_file
    return by_sha256(settings.model_dir, sha256)


def champion(model_dir: Path) -> ModelEntry:
    """The registry's champion entry, with its artifact path resolved inside `model_dir`."""
    path = model_dir / REGISTRY_FILE
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
        artifact_id = registry["champion"]
        entry = registry["models"][artifact_id]
        return ModelEntry(
            artifact_id=artifact_id,
            name=entry["name"],
            version=str(entry["version"]),
            path=_inside(model_dir, entry["file"]),
            sha256=entry["sha256"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"cannot read the champion from {path}: {exc!r}") from exc


def by_sha256(model_dir: Path, sha256: str) -> ModelEntry:
    """The registered artifact with this sha256, champion or not: a replaced model stays listed in `models`
    after a promotion (training/registry.py), so a decision it made can still be re-scored."""
    path = model_dir / REGISTRY_FILE
    try:
        models = json.loads(path.read_text(encoding="utf-8"))["models"]
        for artifact_id, entry in models.items():
            if entry["sha256"] == sha256:
                return ModelEntry(artifact_id, entry["name"], str(entry["version"]), _inside(model_dir, entry["file"]),
                                  entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegistryError(f"cannot read the models of {path}: {exc!r}") from exc
    raise RegistryError(f"no artifact with sha256 {sha256} is registered in {path}")


def _inside(model_dir: Path, file: str) -> Path:
    """The artifact's path, which must stay inside `model_dir` once `..` and symlinks are resolved: the
    directory is what operators mount, sign off and back up, and what the fleet's replicas all see."""
    if not isinstance(file, str) or not file:
        raise RegistryError(f"the champion's file is {file!r}, not a file name")
    path = model_dir / file
    if not path.resolve().is_relative_to(model_dir.resolve()):
        raise RegistryError(f"the champion's file {file!r} is outside the model directory")
    return path
