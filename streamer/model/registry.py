"""Reads onnx_models/registry.json: which artifact is the champion, and what its sha256 must be."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REGISTRY_FILE = "registry.json"


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class ModelEntry:
    artifact_id: str
    name: str
    version: str
    path: Path
    sha256: str


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
            path=model_dir / entry["file"],
            sha256=entry["sha256"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"cannot read the champion from {path}: {exc!r}") from exc
