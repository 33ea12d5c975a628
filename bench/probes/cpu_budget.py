"""Probe: where the CPU goes per audited application, with one worker working off a backlog.

Starts the embedded broker + Postgres + one worker, publishes COUNT applications (1 % invalid) as fast as
possible, and measures from then until the audit table holds a row for every valid one:
- audited applications/s;
- CPU of the worker, the broker and Postgres (all its processes), as % of one core and µs per application;
- per worker thread (named from `py-spy dump` when py-spy is installed): time on a CPU, and time runnable
  but waiting for one (/proc/<pid>/task/<tid>/schedstat). Much waiting means the cores are the limit.

    python -m bench.probes.cpu_budget 300000
    python -m bench.probes.cpu_budget 300000 --split   # two workers: STREAMER_STAGES=scoring, and =audit
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg

from bench.run import server_pids
from streamer.local.produce import publish
from streamer.local.stack import LocalStack
from streamer.local.synthetic import ApplicationFactory


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _thread_names(pid: int) -> dict[str, str]:
    """Native thread id -> Python thread name, from `py-spy dump` if it is installed."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return {}
    dump = subprocess.run([py_spy, "dump", "-p", str(pid)], capture_output=True, text=True, check=False).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r'Thread (\d+) \((?:active|idle)[^)]*\): "([^"]+)"', dump)}


def _comm(pid: int, tid: str) -> str:
    try:
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return tid


def _schedstat(pid: int) -> dict[str, tuple[float, float]]:
    """Per thread: seconds on a CPU, seconds runnable but waiting for one."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            on_cpu, waiting, _ = (task / "schedstat").read_text().split()
        except OSError:
            continue
        out[task.name] = (int(on_cpu) / 1e9, int(waiting) / 1e9)
    return out


def _machine() -> tuple[float, float, float]:
    """Seconds since boot, summed over CPUs: busy, idle (with I/O wait), stolen by the hypervisor."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) / 100 for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return user + nice + system + irq + softirq, idle + iowait, steal


def main(count: int, split: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp)) as stack:
        if split:  # the threads listed are then the scoring worker's
            workers = [stack.start_worker(STREAMER_STAGES="scoring"),
                       stack.start_worker("audit-worker.log", STREAMER_STAGES="audit")]
        else:
            workers = [stack.start_worker()]
        settings = stack.settings()
        payloads = list(ApplicationFactory(int(time.time())).mixed(count, 100))
        valid = sum(p.expected_reason is None for p in payloads)
        pids = [w.process.pid for w in workers if w.process is not None]
        wpid = pids[0]
        groups: dict[str, Callable[[], list[int]]] = {"worker" if not split else "workers": lambda: pids,
                                                      **server_pids(stack)}
        before = {name: _cpu_s(pids()) for name, pids in groups.items()}
        machine_before, probe_before = _machine(), time.process_time()
        threads_before, started = _schedstat(wpid), time.monotonic()
        publish(settings, payloads)  # the worker starts on them at once
        published = time.monotonic()
        with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
            while (conn.execute("SELECT count(*) FROM decision_audit").fetchone() or (0,))[0] < valid:
                time.sleep(0.2)
        ended = time.monotonic()
        elapsed = ended - started
        threads_after = _schedstat(wpid)
        used = {name: _cpu_s(pids()) - before[name] for name, pids in groups.items()}
        used["this probe (publishing, counting)"] = time.process_time() - probe_before
        busy, idle, steal = (after - before for after, before in zip(_machine(), machine_before, strict=True))
        names = _thread_names(wpid)  # now that every thread exists
        print(f"{count:,} applications, {valid:,} valid: published in {published - started:.1f} s, all audited "
              f"{elapsed:.1f} s after publishing began: {valid / elapsed:,.0f}/s")
        for name, seconds in used.items():
            print(f"  {name:34s} {100 * seconds / elapsed:5.0f} % of a core, "
                  f"{1e6 * seconds / valid:6.1f} µs per application")
        print(f"  {'machine':34s} {100 * busy / elapsed:5.0f} % busy, {100 * idle / elapsed:.0f} % idle, "
              f"{100 * steal / elapsed:.0f} % stolen by the hypervisor (of {100 * psutil.cpu_count():.0f} %)")
        for tid, (on_cpu, waiting) in sorted(threads_after.items(), key=lambda kv: -kv[1][0]):
            cpu0, wait0 = threads_before.get(tid, (0.0, 0.0))
            if on_cpu - cpu0 > 0.01 * elapsed:
                name = names.get(tid) or _comm(wpid, tid)
                print(f"  thread {name:16s} on a CPU {100 * (on_cpu - cpu0) / elapsed:5.1f} %, "
                      f"runnable but waiting {100 * (waiting - wait0) / elapsed:5.1f} %")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--split"]
    main(int(args[0]) if args else 300_000, "--split" in sys.argv[1:])
