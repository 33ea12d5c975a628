"""Everything on one machine: a broker + embedded Postgres + migrated schema + worker processes.

The broker is Tansu (embedded, in-memory, what `streamer local` and `streamer demo` run) or Apache Kafka
(what production runs; Java and Maven needed), chosen per stack: the tests and `make soak` / `make bench`
run on both. Stopping the stack leaves no process behind.
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
from typing import IO, Literal, Protocol

from streamer.audit.migrations import migrate
from streamer.config import Settings
from streamer.core.records import generate_keys
from streamer.local.apache_kafka import ApacheKafka, ensure_class_archive
from streamer.local.embedded import EmbeddedKafka, EmbeddedPostgres
from streamer.local.kafka_jars import ensure_kafka_jars
from streamer.local.processes import die_with_parent, free_port

BrokerKind = Literal["tansu", "kafka"]


class Broker(Protocol):
    """What the stack and the tests use of a broker, Tansu or Apache Kafka."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


def make_broker(kind: BrokerKind, run_dir: Path, port: int | None = None) -> Broker:
    if kind == "tansu":
        return EmbeddedKafka(port, log_file=run_dir / "broker.log")
    libs = ensure_kafka_jars()  # once per clone: Maven fetches the jars into .cache/
    return ApacheKafka(libs, run_dir / "kafka", broker_port=port, class_archive=ensure_class_archive(libs))


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

    def __init__(self, run_dir: Path, kafka_port: int | None = None, broker: BrokerKind = "tansu") -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.broker_kind: BrokerKind = broker
        self.kafka = make_broker(broker, run_dir, kafka_port)
        self.postgres = EmbeddedPostgres(run_dir / "pg")
        self.workers: list[WorkerProcess] = []
        # Decision records on, as in production: a key of this stack's own unless the environment gives one;
        # STREAMER_RECORD_KEYS set empty turns them off (the bench measures what they cost that way).
        given = os.environ.get("STREAMER_RECORD_KEYS")
        self.record_keys = generate_keys("dev") if given is None else given

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
            "STREAMER_BROKER_PROFILE": self.broker_kind,
            "STREAMER_CREATE_TOPICS": "true",  # a development broker: nobody provisions its topics
            "STREAMER_RECORD_KEYS": self.record_keys,
            **extra,
        }

    def settings(self, **overrides: object) -> Settings:
        fields = {"kafka_bootstrap": self.kafka.bootstrap, "database_url": self.postgres.url,
                  "broker_profile": self.broker_kind, "create_topics": True, "record_keys": self.record_keys,
                  **overrides}
        return Settings(**fields)  # type: ignore[arg-type]

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
