"""Shared fixtures of the deployment checks: the repository's paths, rendered kustomize overlays, settings."""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from streamer.config import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML is a dev dependency: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
KUBECTL = shutil.which("kubectl")

Doc = dict[str, Any]


def load_yaml_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


@dataclass(frozen=True)
class Rendered:
    """The objects `kubectl kustomize <overlay>` prints."""

    overlay: str
    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Doc:
        found = [d for d in self.of_kind(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def pod_specs(self) -> Iterator[tuple[Doc, Doc]]:
        """(workload, pod spec) for each Deployment and Job."""
        for d in self.of_kind("Deployment") + self.of_kind("Job"):
            yield d, d["spec"]["template"]["spec"]

    def configmap_data(self) -> dict[str, str]:
        return dict(self.one("ConfigMap")["data"])


@functools.cache
def render(overlay: str) -> Rendered:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (expected at /usr/bin/kubectl), so kustomize overlays cannot be rendered")
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / overlay)], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, f"kubectl kustomize {overlay} failed:\n{proc.stderr}"
    return Rendered(overlay, [d for d in yaml.safe_load_all(proc.stdout) if d])


@pytest.fixture(scope="session", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """Each overlay, rendered once per session."""
    return render(str(request.param))


@pytest.fixture(scope="session")
def dev() -> Rendered:
    return render("overlays/dev")


@pytest.fixture(scope="session")
def prod() -> Rendered:
    return render("overlays/prod")


def settings_env_names() -> set[str]:
    """STREAMER_<FIELD> for every field of streamer.config.Settings: the only env vars the worker reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def load_script(relative: str) -> ModuleType:
    """Import a script under deploy/ (not a package) as a module."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while the class body runs
    spec.loader.exec_module(module)
    return module
