"""The Apache Kafka the suite starts stops with it: no JVM outlives a stop, nor the process that started it.

A test run killed halfway (SIGKILL, an OOM, a CI timeout) must not leave brokers behind on a shared machine:
each JVM is tied to the thread that started it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from streamer.local.apache_kafka import ApacheKafka, ensure_class_archive
from streamer.local.kafka_jars import ensure_kafka_jars, tools_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(tools_missing()), reason=f"Apache Kafka tier skipped: {tools_missing()}"),
]

# A child interpreter that starts a node, says its JVM's pid, and waits to be killed.
_STARTER = """
import sys, time
from pathlib import Path
from streamer.local.apache_kafka import ApacheKafka, ensure_class_archive
from streamer.local.kafka_jars import ensure_kafka_jars
libs = ensure_kafka_jars()
node = ApacheKafka(libs, Path(sys.argv[1]), class_archive=ensure_class_archive(libs)).start()
print(node.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, timeout_s: float) -> bool:
    """True once `pid` has exited (a zombie waiting for its reaper counts as exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_stopped_node_leaves_no_jvm(tmp_path: Path) -> None:
    libs = ensure_kafka_jars()
    node = ApacheKafka(libs, tmp_path / "node", class_archive=ensure_class_archive(libs)).start()
    pid = node.pid
    assert pid is not None and psutil.pid_exists(pid)
    node.stop()
    assert _gone(pid, 5), "the JVM outlived stop()"


def test_a_node_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    starter = subprocess.Popen([sys.executable, "-c", _STARTER, str(tmp_path / "node")], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline()
        assert line.strip().isdigit(), f"the child did not start a node: {line!r}"
        jvm = int(line)
        assert psutil.pid_exists(jvm)
        starter.kill()  # SIGKILL: no clean-up code of the child runs
        starter.wait()
        assert _gone(jvm, 10), "the JVM outlived the process that started it"
    finally:
        starter.kill()
        starter.wait()
