"""A real MLflow tracking server for the tests: the model registry on the session's Postgres (a database of
its own), artifacts in a local directory served through the server's artifact proxy, as in k8s.

The server runs from its own venv (.venv/mlflow, requirements/mlflow.txt; `make test` makes it); the
tests skip, saying so, without it. `MLFLOW_SERVER` may name another `mlflow` executable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from streamer.local.processes import free_port
from tests.conftest import REPO

START_TIMEOUT_S = 120.0


def mlflow_executable() -> str | None:
    for candidate in (os.environ.get("MLFLOW_SERVER"), str(REPO / ".venv" / "mlflow" / "bin" / "mlflow")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("mlflow-server")


def sqlalchemy_url(postgres_url: str, database: str) -> str:
    """The session Postgres (a Unix socket) as SQLAlchemy's psycopg 3 URL, for `--backend-store-uri`."""
    parts = conninfo_to_dict(postgres_url)
    user = quote(str(parts.get("user") or "postgres"))
    query = f"host={quote(str(parts['host']))}" + (f"&port={parts['port']}" if parts.get("port") else "")
    return f"postgresql+psycopg://{user}@/{database}?{query}"


class MlflowServer:
    """`mlflow server` on a free loopback port; `stop` and `start` again keep its port, store and artifacts."""

    def __init__(self, executable: str, postgres_url: str, work_dir: Path) -> None:
        self.executable = executable
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._work_dir = work_dir
        self._database = f"mlflow_{self.port}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._database}"')
        self._backend = sqlalchemy_url(postgres_url, self._database)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self._work_dir / "mlflow-server.log", "ab")  # noqa: SIM115 (the child holds it)
        self.process = subprocess.Popen(
            [self.executable, "server", "--backend-store-uri", self._backend,
             "--artifacts-destination", str(self._work_dir / "artifacts"), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self._work_dir, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self._work_dir / "mlflow-server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.5)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:  # loopback, never input
                return int(reply.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """The whole process group (the server and its workers), then wait."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
