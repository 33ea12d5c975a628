"""Apache Kafka (KRaft), the broker production runs, for the tests, `make soak` and `make bench`: one JVM per
node, no Docker and no system packages (Java 17+; the jars come from kafka_jars.py).

`ApacheKafka` is one combined broker+controller node; `ApacheKafkaCluster` (kafka_cluster.py) is n of them
in one static quorum, for failover. Every JVM gets SIGKILL when the Python thread that started it dies
(Linux prctl PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self

from confluent_kafka.admin import AdminClient

from streamer.local.kafka_jars import KafkaUnavailable, file_lock, java_binary
from streamer.local.processes import die_with_parent, free_port

# Small heap, serial GC (no GC threads to feed on 2 cores), C1 only (less JIT work during start-up).
JVM_OPTS: tuple[str, ...] = (
    "-Xms128m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    # Kafka still logs while its shutdown hook runs; log4j's own hook would have closed the log file by then.
    "-Dlog4j2.shutdownHookEnabled=false",
)

# Test settings shared by every node; the node's identity, ports, dirs and quorum are added per node.
TEST_PROPERTIES: dict[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    # 50 partitions each by default: creating them makes the first group/transaction seconds slower.
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.num.partitions": "3",
    # Fewer threads and buffers: less heap and RSS per node (the cleaner's default is a 128 MiB buffer).
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "background.threads": "2",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": "4194304",
    # A killed node is fenced (and its partitions move) after the session timeout, 9 s by default.
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
}

_log = logging.getLogger(__name__)




def random_cluster_id() -> str:
    """A Kafka Uuid as the storage tool prints it: 16 random bytes, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


def _write_properties(path: Path, props: Mapping[str, str]) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _metadata_brokers(bootstrap: str, timeout_s: float) -> set[int]:
    """Broker ids in a metadata response. In KRaft a fenced broker is left out, so present means unfenced."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "reconnect.backoff.max.ms": 200, "log_level": 0})
    return set(admin.list_topics(timeout=timeout_s).brokers)


def create_offsets_topic(bootstrap: str) -> None:
    """Best effort: asking for any group's coordinator creates __consumer_offsets now, in the background.

    Otherwise the first consumer group pays for it: about 3 s of coordinator retries in librdkafka.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    with contextlib.suppress(Exception):
        admin.describe_consumer_groups(["warm-up"])["warm-up"].result(5)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ApacheKafka:
    """One Apache Kafka node, broker and KRaft controller in one JVM, listening on 127.0.0.1.

    Alone (the default) it is its own single-voter quorum. `ApacheKafkaCluster` passes `voters` and
    `cluster_id` so that several nodes form one quorum. Its data (KRaft log, topics) lives in `data_dir`,
    which survives stop() so that a later start() carries on with the same data; the broker logs to
    `data_dir/server.log`. `class_archive` (from `ensure_class_archive`) halves the start-up time.

    Start it from a thread that outlives it (e.g. the main thread, as pytest fixtures run): the JVM gets
    SIGKILL when the *thread* that started it exits, not only when the process does.
    """

    def __init__(
        self,
        libs_dir: Path,
        data_dir: Path,
        *,
        node_id: int = 1,
        broker_port: int | None = None,
        controller_port: int | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
        properties: Mapping[str, str] | None = None,
        jvm_opts: tuple[str, ...] = JVM_OPTS,
        class_archive: Path | None = None,
    ) -> None:
        self.libs_dir = libs_dir
        self.data_dir = data_dir
        self.node_id = node_id
        self.broker_port = broker_port or free_port()
        self.controller_port = controller_port or free_port()
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.cluster_id = cluster_id or random_cluster_id()
        self.jvm_opts = jvm_opts
        self.class_archive = class_archive
        self.properties: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.broker_port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.broker_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data_dir / "kraft-logs"),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            **TEST_PROPERTIES,
            **(properties or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _java_command(self, main: str, *args: str) -> list[str]:
        # Jars listed in a fixed order rather than libs/*: a class archive is only used with the same class path.
        classpath = ":".join(sorted(str(jar) for jar in self.libs_dir.glob("*.jar")))
        archive = [f"-XX:SharedArchiveFile={self.class_archive}"] if self.class_archive else []
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        return [java_binary() or "java", *self.jvm_opts, *archive, log4j, "-cp", classpath, main, *args]

    def format_storage(self) -> None:
        """Writes the config and formats the KRaft storage, once: meta.properties present means done."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _write_properties(self.data_dir / "server.properties", self.properties)
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_file))
        if (Path(self.properties["log.dirs"]) / "meta.properties").is_file():
            return
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.data_dir / "server.properties"),
        )
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise KafkaUnavailable(f"kafka storage format failed for node {self.node_id}:\n{done.stdout}{done.stderr}")

    def launch(self) -> None:
        """Writes the config, formats the storage if new, and starts the JVM without waiting for it."""
        if self.running:
            return
        self.format_storage()
        self._stdout = (self.data_dir / "stdout.log").open("ab")  # a file, not a pipe: a full pipe blocks the JVM
        parent = os.getpid()
        try:
            self._process = subprocess.Popen(
                self._java_command("kafka.Kafka", str(self.data_dir / "server.properties")),
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C goes to the tests, which then stop the node
                preexec_fn=lambda: die_with_parent(signal.SIGKILL, parent),  # noqa: PLW1509 (prctl, getppid: async-signal-safe)
            )
        except BaseException:
            self._close()
            raise

    def wait_ready(self, timeout: float = 60.0, brokers: int = 1) -> None:
        """Waits until this node's listener answers metadata requests that list `brokers` unfenced brokers."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise KafkaUnavailable(
                    f"Kafka node {self.node_id} exited ({code}):\n{_tail(self.log_file)}\n"
                    f"{_tail(self.data_dir / 'stdout.log')}"
                )
            if _port_open(self.broker_port):
                with contextlib.suppress(Exception):
                    seen = _metadata_brokers(self.bootstrap, 1.0)
                    if self.node_id in seen and len(seen) >= brokers:
                        return
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"Kafka node {self.node_id} not ready after {timeout}s (brokers seen: "
                    f"{sorted(seen)}):\n{_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def start(self, timeout: float = 60.0) -> Self:
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        create_offsets_topic(self.bootstrap)
        return self

    def terminate(self) -> None:
        """Sends SIGTERM (a controlled shutdown) without waiting; stop() waits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL if it has not exited after `timeout` seconds."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL: a crash. The data dir stays, so start() brings the same node back."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close()

    def _close(self) -> None:
        self._process = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _jdk_key(java: str) -> str:
    real = os.path.realpath(java)
    return hashlib.sha256(f"{real}:{os.stat(real).st_mtime_ns}".encode()).hexdigest()[:12]


def ensure_class_archive(libs_dir: Path, timeout: float = 120.0) -> Path | None:
    """A class-data-sharing archive of what a broker loads while starting, next to `libs_dir`, made once per JDK.

    With it a node starts in about half the time and CPU. Making it runs a throwaway node (~15 s, once);
    on failure this logs a warning and returns None, and the nodes simply start without it.
    """
    java = java_binary()
    if java is None:
        return None
    archive = libs_dir.parent / f"classes-{_jdk_key(java)}.jsa"
    if archive.is_file():
        return archive
    with file_lock(libs_dir.parent / "classes.lock"):
        if archive.is_file():
            return archive
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="kafka-cds-") as tmp:
            node = ApacheKafka(libs_dir, Path(tmp))
            try:
                node.format_storage()
                node.jvm_opts = (*node.jvm_opts, f"-XX:ArchiveClassesAtExit={partial}")  # written as the JVM exits
                node.start(timeout)
                node.stop(timeout)
            except (KafkaUnavailable, OSError, subprocess.SubprocessError) as exc:
                node.kill()
                _log.warning("no class archive for Kafka (nodes start without one): %s", exc)
                return None
        if not partial.is_file() or partial.stat().st_size == 0:
            _log.warning("no class archive for Kafka: the JVM wrote none (see -XX:ArchiveClassesAtExit)")
            return None
        partial.rename(archive)
    return archive
