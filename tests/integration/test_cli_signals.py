"""Every long-running command stops promptly on SIGINT (Ctrl-C) and SIGTERM (`timeout`, a k8s Job).

A terminal's Ctrl-C signals the whole foreground process group at once, so SIGINT goes to the command's
group; SIGTERM goes to the command alone, as `kill` and Kubernetes send it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from streamer.config import Settings
from streamer.local.processes import free_port
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.topics import ensure_topics
from tests.conftest import REPO, TANSU_ONLY, Isolated

# Tansu alone: signal handling; `local` and `demo` run the embedded stack whatever the suite's broker.
pytestmark = [pytest.mark.integration, TANSU_ONLY]

# Generous bounds that only a command ignoring the signal exceeds: `produce --count 100000 --rate 500`
# would run for 200 s, and the worker's drain is bounded by its 30 s delivery timeout.
STOP_WITHIN_S = 45.0
SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


class Command:
    """A CLI command run as a user runs it, in its own process group, its output collected as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamer", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.seen: set[int] = set()  # every descendant seen while it ran, so none can leak unnoticed

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self._note_descendants()
            assert self.process.poll() is None, f"exited before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout_s}s:\n{self.output()}"
            time.sleep(0.2)
        self._note_descendants()

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig` as a terminal (SIGINT: the process group) or an orchestrator (SIGTERM) would; the
        seconds it took to exit."""
        self._note_descendants()
        asked = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        try:
            self.process.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_WITHIN_S}s after {sig.name}:\n{self.output()}")
        return time.monotonic() - asked

    def survivors(self) -> list[str]:
        """Descendants seen while it ran that are still alive (zombies of a dead parent do not count)."""
        alive = []
        for pid in self.seen:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(process.cmdline()))
            except psutil.NoSuchProcess:
                continue
        return alive

    def kill(self) -> None:
        for pid in [self.process.pid, *self.seen]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def _note_descendants(self) -> None:
        try:
            self.seen.update(p.pid for p in psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return


@contextmanager
def command(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> Iterator[Command]:
    running = Command(argv, env, cwd)
    try:
        yield running
    finally:
        running.kill()


def _postgres_of(run_dir: str) -> list[psutil.Process]:
    """The embedded Postgres is started by pg_ctl and re-parented, so it is found by its data dir."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if run_dir in " ".join(process.info["cmdline"] or []) and process.pid != os.getpid():
            found.append(process)
    return found


@pytest.mark.parametrize("sig", SIGNALS)
def test_produce_stops_publishing_on_a_signal(isolated: Isolated, sig: signal.Signals) -> None:
    ensure_topics(isolated.settings, [isolated.settings.input_topic])  # so the reader sees its partitions
    with command(["produce", "--count", "100000", "--rate", "500"], env=isolated.env) as produce:
        reader = TopicReader(isolated.settings, isolated.settings.input_topic)
        try:
            assert reader.read_until(lambda r: len(r) >= 200, 60), "produce published nothing"
            produce.signal(sig)
            assert produce.printed("stopped after publishing"), produce.output()
            reader.read_more(1.0)
            published = len(reader.records)
            time.sleep(2.0)  # anything still publishing would add ~1,000 records in this time
            reader.read_more(1.0)
            assert len(reader.records) == published < 100_000
        finally:
            reader.close()


@pytest.mark.parametrize("sig", SIGNALS)
def test_local_drains_its_worker_before_stopping_its_servers(sig: signal.Signals) -> None:
    with command(["local", "--kafka-port", "0"]) as local:
        local.wait_for(lambda: local.printed("STREAMER_DATABASE_URL="), 120, "servers")
        bootstrap = next(line for line in local.lines if line.startswith("STREAMER_KAFKA_BOOTSTRAP=127.0.0.1:"))
        run_dir = next(line for line in local.lines if "host=" in line).rsplit("host=", 1)[1].strip()
        local.wait_for(lambda: local.printed("partitions_assigned"), 90, "a worker holding partitions")
        # Applications flowing when the signal comes: the worker has batches to drain and commit.
        settings = Settings(kafka_bootstrap=bootstrap.split("=", 1)[1].strip())
        stop_load = threading.Event()
        load = threading.Thread(
            target=publish, args=(settings, ApplicationFactory(seed=3).mixed(1_000_000, 0), 1000.0, stop_load),
            daemon=True,
        )
        load.start()
        local.wait_for(lambda: local.printed("batch_scored"), 60, "a scored batch")
        try:
            local.signal(sig)
        finally:
            stop_load.set()
        # The worker's log flows through ours: a broker or Postgres gone before its drain shows up as errors.
        errors = [line for line in local.lines if '"level": "error"' in line or "final_commit_failed" in line]
        assert errors == [], "".join(errors[:5])
        assert local.survivors() == [], local.output()
        assert _postgres_of(run_dir.removesuffix("/pg")) == []


@pytest.mark.parametrize("sig", SIGNALS)
def test_demo_stops_midway_on_a_signal_and_leaves_no_process_behind(sig: signal.Signals) -> None:
    with command(["demo", "--count", "50000"]) as demo:
        demo.wait_for(lambda: demo.printed("publishing 50,000 applications"), 180, "publishing")
        run_dir = next(line for line in demo.lines if "postgres " in line).split("host=", 1)[1].split(";")[0]
        demo.signal(sig)
        assert demo.printed("demo stopped"), demo.output()
        assert demo.survivors() == [], demo.output()
        assert _postgres_of(run_dir.removesuffix("/pg")) == []


def test_worker_stops_on_sigint_as_on_sigterm(isolated: Isolated) -> None:
    with command(["worker"], env={**isolated.env, "STREAMER_WEB_PORT": str(free_port())}) as worker:
        worker.wait_for(lambda: worker.printed("partitions_assigned"), 90, "its batch loops")
        worker.signal(signal.SIGINT)
        assert worker.process.returncode == 0, worker.output()
