"""The model directory on disk: artifacts, their sidecars and cards, and registry.json.

A running worker polls registry.json, so it is only ever replaced whole: each write goes to a temporary
file in the same directory, is fsynced, then `os.replace`d over the old one (atomic on POSIX), and the
directory is fsynced so the rename survives a crash. Readers see the old document or the new one, never
a mix. Writers (train, promote, rollback) also take an exclusive flock on the directory itself around their
read-modify-write, so two concurrent promotions cannot lose each other's change.

Artifact files are written before the registry names them, so the registry never points at a missing file.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from training import registry
from training.export import Artifact, ExportError, sha256_of, sidecar


def read_registry(model_dir: Path) -> registry.Registry:
    path = model_dir / registry.FILE_NAME
    return registry.parse(path.read_text(encoding="utf-8")) if path.exists() else registry.empty()


def update_registry(model_dir: Path, change: Callable[[registry.Registry], registry.Registry]) -> registry.Registry:
    """Apply `change` to the registry under the writers' lock and replace the file atomically."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with _writers_lock(model_dir):
        return _apply(model_dir, change)


def publish(
    artifact: Artifact, model_dir: Path, *, promote: bool, attachments: Mapping[str, bytes] | None = None
) -> Path:
    """Write attachments (card, plots), the .onnx file and its sidecar, then register it; return the .onnx path.

    All under the writers' lock. Refuses, before writing anything, to replace a released version's file
    (or registry entry) with different bytes.
    """
    onnx_path = model_dir / artifact.file
    entry = registry_entry(artifact)
    model_dir.mkdir(parents=True, exist_ok=True)
    with _writers_lock(model_dir):
        if onnx_path.exists() and (released := sha256_of(onnx_path)) != artifact.sha256:
            raise ExportError(
                f"{onnx_path} exists with different bytes (sha256 {released}, new {artifact.sha256}). "
                "Released versions are immutable: choose another --version, or delete the file deliberately."
            )
        registry.register(read_registry(model_dir), artifact.key, entry, promote, now())  # fail before writing
        for name, content in (attachments or {}).items():
            write_atomic(model_dir / name, content)
        write_atomic(onnx_path, artifact.onnx_bytes)
        write_atomic(model_dir / f"{artifact.key}.json", (json.dumps(sidecar(artifact), indent=2) + "\n").encode())
        _apply(model_dir, lambda current: registry.register(current, artifact.key, entry, promote, now()))
    return onnx_path


def registry_entry(artifact: Artifact) -> registry.ModelEntry:
    return {
        "name": artifact.name,
        "version": artifact.version,
        "file": artifact.file,
        "sha256": artifact.sha256,
        "metrics": artifact.metrics,
        "model": artifact.model,
        "trained_at": artifact.trained_at,
        "contributions": artifact.contributions_method,
        "protected_features": list(artifact.protected_features),
        "card": f"{artifact.key}.md",
    }


def promote(model_dir: Path, reference: str) -> registry.Registry:
    """Make the referenced artifact champion, after checking its file has the registered sha256."""

    def change(current: registry.Registry) -> registry.Registry:
        key = registry.resolve(current, reference)
        verify_file(model_dir, current, key)
        return registry.promote_to(current, key, now())

    return update_registry(model_dir, change)


def rollback(model_dir: Path) -> registry.Registry:
    """Return to the previous champion, after checking its file has the registered sha256."""

    def change(current: registry.Registry) -> registry.Registry:
        updated = registry.rollback(current, now())
        verify_file(model_dir, current, str(updated["champion"]))
        return updated

    return update_registry(model_dir, change)


def verify_file(model_dir: Path, document: registry.Registry, key: str) -> None:
    """Refuse to serve an artifact whose file is missing or differs from the registry (the worker would too)."""
    entry = document["models"][key]
    path = model_dir / entry["file"]
    if not path.is_file():
        raise registry.RegistryError(f"{key}: {path} does not exist")
    if (actual := sha256_of(path)) != entry["sha256"]:
        raise registry.RegistryError(f"{key}: {path} has sha256 {actual}, the registry records {entry['sha256']}")


def write_atomic(path: Path, content: bytes) -> None:
    """Replace `path` with `content` so that readers see either the old file or the new one, whole."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as partial:
            partial.write(content)
            partial.flush()
            os.fsync(partial.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; artifacts are read by the worker's user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _apply(model_dir: Path, change: Callable[[registry.Registry], registry.Registry]) -> registry.Registry:
    current = read_registry(model_dir)
    updated = change(current)
    if updated != current:
        write_atomic(model_dir / registry.FILE_NAME, registry.dump(updated).encode())
    return updated


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _writers_lock(model_dir: Path) -> Iterator[None]:
    """An exclusive flock on the directory (no lock file to leave behind), released on exit."""
    directory = os.open(model_dir, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        yield
    finally:
        os.close(directory)  # closing the descriptor releases the lock
