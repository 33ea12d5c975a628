"""Everything on one machine: embedded broker + embedded Postgres + migrated schema + a worker process.

Used by `streamer local`, `streamer demo` and the integration tests. Stopping it leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from streamer.audit.migrations import migrate
from streamer.config import Settings
from streamer.local.embedded import EmbeddedKafka, EmbeddedPostgres, die_with_parent, free_port


class WorkerProcess:
    """`python -m streamer worker` as a child process, pointed at the given servers."""

    def __init__(self, env: dict[str, str], log_path: Path | None, cwd: Path | None = None) -> None:
        self.web_port = int(env.get("STREAMER_WEB_PORT") or free_port())
        self._env = {**env, "STREAMER_WEB_PORT": str(self.web_port)}
        self._log_path = log_path
        self._cwd = cwd
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamer", "worker"],
            env=self._env, cwd=self._cwd, stdout=self._log, stderr=subprocess.STDOUT if self._log else None,
            # Its own session: a terminal's Ctrl-C reaches only our command, which stops the worker first and
            # the broker and Postgres after its drain. If our process dies, the worker gets SIGTERM.
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),  # noqa: PLW1509 (prctl is async-signal-safe)
        )
        return self

    def wait_ready(self, timeout_s: float = 90.0, stop: threading.Event | None = None) -> None:
        """Until /readyz says ready, or `stop` is set."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the worker exited before it was ready; see {self._log_path or 'its output'}")
            if self.ready():
                return
            time.sleep(0.25)
        if stop and stop.is_set():
            return
        raise TimeoutError(f"the worker was not ready after {timeout_s}s; see {self._log_path or 'its output'}")

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.web_port}/readyz"  # a fixed loopback URL, never input
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:  # nosec B310
                return bool(json.load(reply).get("ready"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful: the current batch finishes and is committed), then SIGKILL if needed."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        if self._log:
            self._log.close()
            self._log = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class LocalStack:
    """Broker + Postgres + schema, optionally a worker. A context manager; `stop()` is idempotent."""

    def __init__(self, run_dir: Path, kafka_port: int | None = None) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.kafka = EmbeddedKafka(kafka_port, log_file=run_dir / "broker.log")
        self.postgres = EmbeddedPostgres(run_dir / "pg")
        self.workers: list[WorkerProcess] = []

    def start(self) -> LocalStack:
        try:
            self.kafka.start()
            self.postgres.start()
            migrate(self.postgres.url)
        except BaseException:
            self.stop()
            raise
        return self

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMER_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "STREAMER_DATABASE_URL": self.postgres.url,
            "STREAMER_DATA_DIR": str(self.run_dir / "faust"),
            "STREAMER_LOG_FORMAT": "json",
            **extra,
        }

    def settings(self, **overrides: object) -> Settings:
        return Settings(kafka_bootstrap=self.kafka.bootstrap, database_url=self.postgres.url, **overrides)  # type: ignore[arg-type]

    def start_worker(self, log_name: str | None = "worker.log", wait: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(self.env(**env), self.run_dir / log_name if log_name else None).start()
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        self.kafka.stop()
        self.postgres.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
