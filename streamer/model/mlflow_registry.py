"""The champion from an MLflow model registry: the `champion` alias of one registered model.

The only module on the worker's side that imports mlflow (the `mlflow` extra: mlflow-skinny). Each poll is
one request for the alias; the artifact is downloaded only when the alias names a version not seen before,
through the tracking server's artifact proxy, into a cache under the data directory keyed by its sha256.
What a version must carry, as `python -m training` registers it: the tags below, and the `.onnx` file at
`artifact_path` among its run's artifacts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from streamer.config import Settings
from streamer.model.registry import ModelEntry, RegistryError, RegistryUnreachable

CHAMPION_ALIAS = "champion"
# The version tags the worker reads (training/mlflow_store.py writes them).
TAG_SHA256 = "sha256"
TAG_NAME = "artifact_name"
TAG_VERSION = "artifact_version"
TAG_ID = "artifact_id"
TAG_PATH = "artifact_path"
# Answers that mean MLflow is up but the registry holds no usable champion; any other failure is an outage.
_ANSWERED = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST"})


class MlflowRegistry:
    """Follows `<model>@champion` on one tracking server."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, model_name: str, cache_dir: Path, timeout_s: int) -> None:
        # mlflow reads its HTTP timeout and retries from the environment only. Its defaults (120 s, 7 retries
        # with back-off) would hold a poll for minutes; one try per poll, the next poll is the retry.
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(timeout_s)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._model_name = model_name
        self._cache_dir = cache_dir
        self._last: tuple[tuple[str, str], ModelEntry] | None = None  # (version, sha256) -> its entry

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowRegistry:
        if settings.mlflow_tracking_uri is None:
            raise RegistryError("the mlflow registry needs STREAMER_MLFLOW_TRACKING_URI")
        return cls(settings.mlflow_tracking_uri, settings.mlflow_model_name,
                   settings.data_dir / "models", settings.mlflow_timeout_s)

    def champion(self) -> ModelEntry:
        try:
            version = self._client.get_model_version_by_alias(self._model_name, CHAMPION_ALIAS)
        except MlflowException as exc:
            raise _classified(exc, f"{self._model_name}@{CHAMPION_ALIAS}") from exc
        except OSError as exc:
            raise RegistryUnreachable(f"MLflow did not answer: {exc!r}") from exc
        key = (str(version.version), dict(version.tags or {}).get(TAG_SHA256, ""))
        if self._last is not None and self._last[0] == key:
            return self._last[1]  # the alias has not moved: no download
        entry = self._entry(version)
        self._last = (key, entry)
        return entry

    def by_sha256(self, sha256: str) -> ModelEntry:
        """The version of the registered model tagged with this sha256, champion or not, downloaded (for
        `streamer decisions reproduce`: a decision made by a model since replaced)."""
        try:
            versions = self._client.search_model_versions(f"name = '{self._model_name}'")
        except MlflowException as exc:
            raise _classified(exc, f"the versions of {self._model_name}") from exc
        except OSError as exc:
            raise RegistryUnreachable(f"MLflow did not answer: {exc!r}") from exc
        for version in versions:
            if dict(version.tags or {}).get(TAG_SHA256) == sha256:
                return self._entry(version)
        raise RegistryError(f"no version of {self._model_name} in MLflow has sha256 {sha256}")

    def _entry(self, version: ModelVersion) -> ModelEntry:
        """A version's entry, its artifact downloaded (or found in the cache)."""
        tags = dict(version.tags or {})
        missing = [t for t in (TAG_SHA256, TAG_NAME, TAG_VERSION, TAG_PATH) if not tags.get(t)]
        if missing or not version.run_id:
            raise RegistryError(f"{self._model_name} version {version.version} lacks tags {missing} or a run")
        path = self._download(str(version.run_id), tags[TAG_PATH], tags[TAG_SHA256])
        return ModelEntry(
            artifact_id=tags.get(TAG_ID) or f"{tags[TAG_NAME]}-{tags[TAG_VERSION]}",
            name=tags[TAG_NAME],
            version=tags[TAG_VERSION],
            path=path,
            sha256=tags[TAG_SHA256],
        )

    def _download(self, run_id: str, artifact_path: str, sha256: str) -> Path:
        """The artifact at `<cache>/<sha256>.onnx`. Its bytes are checked by the loader, not here: a file
        that differs from its tag is refused (and counted) like any other bad candidate."""
        target = self._cache_dir / f"{sha256}.onnx"
        if target.is_file():
            return target
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._cache_dir, prefix=".download-") as scratch:
            try:
                local = self._client.download_artifacts(run_id, artifact_path, scratch)
            except MlflowException as exc:
                raise _classified(exc, f"run {run_id} artifact {artifact_path}") from exc
            except OSError as exc:
                raise RegistryUnreachable(f"artifact download failed: {exc!r}") from exc
            downloaded = Path(local)
            if not downloaded.is_file():
                raise RegistryError(f"run {run_id} artifact {artifact_path} is not a file")
            if not downloaded.resolve().is_relative_to(Path(scratch).resolve()):  # a local store returns its own
                downloaded = Path(shutil.copyfile(downloaded, Path(scratch) / "artifact.onnx"))
            os.replace(downloaded, target)  # same file system: a reader sees no partial file
        return target


def _classified(exc: MlflowException, what: str) -> RegistryError:
    if exc.error_code in _ANSWERED:
        return RegistryError(f"MLflow has no usable {what}: {exc.message}")
    return RegistryUnreachable(f"MLflow did not answer for {what}: {exc.error_code}")
