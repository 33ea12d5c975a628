"""The image's venv, built here by the Dockerfile's own script (deploy/build-venv.sh) from a copy of the build
context that .dockerignore lets through, since no Docker engine runs where the tests do: it holds exactly
the runtime lock and streamer, cannot install anything, and runs the worker's CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO
from tests.deploy.test_locks import REQUIREMENTS, canonical, locked


def build_context(target: Path) -> Path:
    """What `docker build .` would send: the .dockerignore's `!` entries (it excludes everything else)."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for entry in (line[1:].rstrip("/") for line in lines if line.startswith("!")):
        source, destination = REPO / entry, target / entry
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
        else:
            shutil.copy2(source, destination)
    return target


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    context = build_context(tmp_path_factory.mktemp("context"))
    venv = tmp_path_factory.mktemp("opt") / "venv"
    # The Dockerfile's RUN line, in the context's root as in its WORKDIR; the pip cache `make` filled serves
    # the packages (the image sets PIP_NO_CACHE_DIR instead).
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "/.venv/" not in p + "/")
    proc = subprocess.run(["sh", "deploy/build-venv.sh", str(venv)], cwd=context, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return venv


def run(venv: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(venv.parent)})


class TestImageVenv:
    def test_it_holds_exactly_the_runtime_lock_and_streamer(self, image_venv: Path) -> None:
        proc = run(image_venv, "python", "-c",
                   "import importlib.metadata as m; print('\\n'.join(f'{d.name}=={d.version}' "
                   "for d in m.distributions()))")
        assert proc.returncode == 0, proc.stderr
        installed = dict(line.split("==") for line in proc.stdout.split())
        installed = {canonical(name): version for name, version in installed.items()}
        assert installed.pop("streamer") == "0.1.0"
        assert installed == locked(REQUIREMENTS / "runtime.txt")

    def test_it_has_neither_pip_nor_setuptools(self, image_venv: Path) -> None:
        for module in ("pip", "setuptools", "wheel"):
            proc = run(image_venv, "python", "-c", f"import {module}")
            assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module
        assert not list((image_venv / "bin").glob("pip*"))

    def test_its_streamer_command_starts_the_worker_cli(self, image_venv: Path) -> None:
        proc = run(image_venv, "streamer", "worker", "--help")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Start worker instance" in proc.stdout

    def test_it_carries_the_packaged_schemas_and_migrations(self, image_venv: Path) -> None:
        proc = run(image_venv, "python", "-c",
                   "import importlib.resources as r; print(len([p for p in r.files('streamer.audit.sql').iterdir()"
                   " if p.name.endswith('.sql')]), len(list(r.files('schemas').joinpath('json').iterdir())))")
        assert proc.returncode == 0, proc.stderr
        sql, schemas = map(int, proc.stdout.split())
        assert sql == len(list((REPO / "streamer" / "audit" / "sql").glob("*.sql")))
        assert schemas == len(list((REPO / "schemas" / "json").iterdir()))
