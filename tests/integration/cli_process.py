"""CLI commands run as a user runs them: a process in its own group, its output read as it comes, and
every process it started seen, so that none can outlive it unnoticed."""

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

from tests.conftest import REPO

# Generous bounds that only a command ignoring the signal exceeds: `produce --count 100000 --rate 500`
# would run for 200 s, and the worker's drain is bounded by its 30 s delivery timeout.
STOP_WITHIN_S = 45.0


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

    def wait_exit(self, timeout_s: float) -> int:
        """Until it exits by itself (noting what it started meanwhile); its exit code, all its output read."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"still running after {timeout_s}s:\n{self.output()}"
            self._note_descendants()
            time.sleep(0.2)
        self._reader.join(10)
        return self.process.returncode

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


def postgres_of(run_dir: str) -> list[psutil.Process]:
    """The embedded Postgres is started by pg_ctl and re-parented, so it is found by its data dir."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if run_dir in " ".join(process.info["cmdline"] or []) and process.pid != os.getpid():
            found.append(process)
    return found
