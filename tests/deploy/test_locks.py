"""The locks (requirements/*.txt): every install of the project comes from them, with hashes, and they agree
with what they were resolved from. `make lock` re-resolves them; these tests say when someone forgot to."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.markers import Marker

from tests.deploy.conftest import REPO

REQUIREMENTS = REPO / "requirements"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
MAKEFILE = (REPO / "Makefile").read_text(encoding="utf-8")
EXTRAS = PROJECT["optional-dependencies"]
IMAGE_REQUIREMENTS = [*PROJECT["dependencies"], *EXTRAS["otel"], *EXTRAS["mlflow"]]
# A lock's entry: `name==version [; marker] \` then its `--hash=sha256:...` lines (uv's pip-compatible output;
# a universal lock may pin a package twice, under two markers).
ENTRY = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(?: ; ([^\\\n]+?))? \\\n"  # name==version [; marker] \
    r"((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",  # its hashes, one per line
    re.MULTILINE,
)


class Entry(NamedTuple):
    name: str
    version: str
    marker: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: Path) -> list[Entry]:
    """Every entry of a lock, failing on one without a hash."""
    text = lock.read_text(encoding="utf-8")
    found = [Entry(canonical(name), version, marker or "") for name, version, marker, _ in ENTRY.findall(text)]
    requirement_lines = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert found and len(found) == len(requirement_lines), f"{lock.name}: entries without hashes or not pinned"
    return found


def locked(lock: Path) -> dict[str, str]:
    """name -> version of each entry this interpreter and platform would install (its marker holds)."""
    return {e.name: e.version for e in entries(lock) if not e.marker or Marker(e.marker).evaluate()}


def pinned(requirements: list[str]) -> dict[str, str]:
    """name -> version of `name[extras]==version` requirements, skipping the project's own extras."""
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)(?:\[[\w,]+\])?==(\S+)", requirement.split(";")[0].strip())
        assert match or requirement.startswith("streamer["), f"not pinned: {requirement!r}"
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def extras_of_dev() -> list[str]:
    """dev's own requirements plus those of every extra it names (`streamer[training,local]`)."""
    extras = PROJECT["optional-dependencies"]
    requirements = list(extras["dev"])
    for requirement in extras["dev"]:
        if requirement.startswith("streamer["):
            for extra in requirement[len("streamer["):-1].split(","):
                requirements += extras[extra]
    return requirements


def disagreements(wanted: dict[str, str], lock: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    return {name: (version, lock.get(name)) for name, version in wanted.items() if lock.get(name) != version}


class TestLocks:
    @pytest.mark.parametrize("lock", sorted(REQUIREMENTS.glob("*.txt")), ids=lambda p: p.name)
    def test_every_entry_of_every_lock_is_an_exact_version_with_hashes(self, lock: Path) -> None:
        found = entries(lock)
        assert all(e.version[0].isdigit() for e in found), found

    def test_the_runtime_lock_pins_every_base_otel_and_mlflow_dependency_at_pyprojects_version(self) -> None:
        """The image carries the `otel` and `mlflow` extras: tracing and the MLflow registry are settings."""
        assert not disagreements(pinned(IMAGE_REQUIREMENTS), locked(REQUIREMENTS / "runtime.txt"))

    def test_the_runtime_lock_carries_nothing_of_the_training_or_local_extras_nor_the_test_tools(self) -> None:
        """(A dev pin the served packages also need, such as pyyaml for mlflow-skinny, may be in both.)"""
        runtime = locked(REQUIREMENTS / "runtime.txt")
        not_served = set(pinned([*EXTRAS["training"], *EXTRAS["local"]])) - set(pinned(IMAGE_REQUIREMENTS))
        not_served |= {"pytest", "ruff", "mypy", "hypothesis", "bandit", "pip-audit", "uv", "import-linter"}
        assert "scikit-learn" in not_served and not not_served & set(runtime), not_served & set(runtime)

    def test_the_dev_lock_pins_every_extra_make_installs_at_pyprojects_version(self) -> None:
        assert not disagreements(pinned(extras_of_dev()), locked(REQUIREMENTS / "dev.txt"))

    def test_the_dev_lock_has_the_runtime_locks_versions(self) -> None:
        """Tests run what the image runs: each package the image installs is at the same version in make's venv."""
        assert not disagreements(locked(REQUIREMENTS / "runtime.txt"), locked(REQUIREMENTS / "dev.txt"))

    def test_the_build_lock_agrees_with_the_dev_lock_where_both_pin_a_package(self) -> None:
        build, dev = locked(REQUIREMENTS / "build.txt"), locked(REQUIREMENTS / "dev.txt")
        assert {"pip", "setuptools", "wheel"} <= set(build)
        assert not disagreements({n: v for n, v in build.items() if n in dev}, dev)

    @pytest.mark.parametrize("source", sorted(REQUIREMENTS.glob("*.in")), ids=lambda p: p.name)
    def test_each_tool_lock_pins_its_inputs_versions(self, source: Path) -> None:
        wanted = pinned([line for line in source.read_text(encoding="utf-8").splitlines()
                         if line.strip() and not line.startswith("#")])
        assert wanted and not disagreements(wanted, locked(source.with_suffix(".txt")))

    def test_the_builds_setuptools_satisfies_pyprojects_build_requirement(self) -> None:
        requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
        floor = next(int(r.split(">=")[1]) for r in requires if r.startswith("setuptools>="))
        assert int(locked(REQUIREMENTS / "build.txt")["setuptools"].split(".")[0]) >= floor

    def test_every_lock_was_made_by_make_lock(self) -> None:
        """Each header holds uv's command; it must be the Makefile's, so `make lock` reproduces every file."""
        flags = re.search(r"^LOCK = \$\(VENV\)/bin/uv pip compile --quiet (.+)$", MAKEFILE, re.MULTILINE)
        assert flags
        for lock in REQUIREMENTS.glob("*.txt"):
            header = lock.read_text(encoding="utf-8").splitlines()[1]
            assert header.startswith(f"#    uv pip compile {flags[1]} "), (lock.name, header)
            assert header.endswith(f"-o requirements/{lock.name}"), (lock.name, header)


class TestInstallsUseTheLocks:
    def test_every_venv_make_creates_installs_from_a_lock_with_hashes(self) -> None:
        installs = re.findall(r"^\t(.*(?:pip install|PIP_LOCKED).*)$", MAKEFILE, re.MULTILINE)
        assert re.search(r"^PIP_LOCKED := -m pip install .*--require-hashes", MAKEFILE, re.MULTILINE)
        from_locks = [line for line in installs if "$(PIP_LOCKED) -r requirements/" in line]
        project = [line for line in installs if "--no-deps --no-build-isolation -e ." in line]
        assert len(from_locks) == 5 and len(project) == 1 and len(installs) == 6, installs

    def test_the_image_installs_the_runtime_lock_with_hashes_and_the_wheel_without_dependencies(self) -> None:
        script = (REPO / "deploy" / "build-venv.sh").read_text(encoding="utf-8")
        assert "install --quiet --require-hashes -r requirements/runtime.txt" in script
        assert "install --quiet --no-deps \"$work\"/wheels/streamer-*.whl" in script
        assert "--no-build-isolation" in script and "-r requirements/build.txt" in script


def cyclonedx() -> str:
    found = shutil.which("cyclonedx-py") or str(Path(sys.executable).parent / "cyclonedx-py")
    if not Path(found).exists():
        pytest.skip("cyclonedx-py is not installed: it comes with the dev extra (cyclonedx-bom)")
    return found


class TestSbom:
    def test_the_sbom_the_workflow_makes_from_the_runtime_lock_lists_exactly_its_packages_and_hashes(
        self, tmp_path: Path
    ) -> None:
        workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
        command = re.search(r"^\s+(cyclonedx-py requirements .+)$", workflow, re.MULTILINE)
        assert command, "the workflow makes no SBOM from the lock"
        argv = command[1].replace("sbom.cdx.json", str(tmp_path / "sbom.cdx.json")).split()
        proc = subprocess.run([cyclonedx(), *argv[1:]], cwd=REPO, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        bom = json.loads((tmp_path / "sbom.cdx.json").read_text(encoding="utf-8"))
        assert bom["metadata"]["component"]["name"] == "streamer"
        components = bom["components"]
        listed = sorted((canonical(c["name"]), c["version"]) for c in components)
        assert listed == sorted((e.name, e.version) for e in entries(REQUIREMENTS / "runtime.txt"))
        text = (REQUIREMENTS / "runtime.txt").read_text(encoding="utf-8")
        for component in components:
            hashes = [h["content"] for ref in component["externalReferences"] for h in ref.get("hashes", [])]
            assert hashes and all(f"--hash=sha256:{h}" in text for h in hashes), component["name"]
