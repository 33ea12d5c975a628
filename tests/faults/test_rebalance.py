"""4. Rebalance under load: 1 -> 3 -> 2 workers in one consumer group; nothing lost, no audit row twice, and
each worker scores during each phase it is part of (every phase is a condition wait, not a fixed sleep)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LOAD_S = 25.0
PHASE_TIMEOUT_S = 20.0


def test_scaling_one_to_three_to_two_workers_under_load_loses_nothing_and_doubles_no_audit_row(
    isolated: Isolated, size: Sizes
) -> None:
    s, logs, workers = isolated.settings, isolated.run_dir, isolated.stack.workers
    payloads = synthetic(size.rebalance_applications, 100, seed=104)
    a = spawn(isolated.env, logs / "worker-a.log", workers)
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / LOAD_S).start()
    phases: dict[str, dict[str, int]] = {}
    # Phase 1: a alone.
    _until_scored(logs, {"a": 0})
    phases["one"] = _scored(logs)
    # Phase 2: b and c join; each of the three scores while all three are in the group.
    b = spawn(isolated.env, logs / "worker-b.log", workers, wait=False)  # distinct free web ports
    c = spawn(isolated.env, logs / "worker-c.log", workers, wait=False)
    b.wait_ready()
    c.wait_ready()
    _until_scored(logs, {"b": 0, "c": 0})
    _until_scored(logs, {"a": _scored(logs)["a"]})  # after b and c got partitions: a scored in phase 2 too
    phases["three"] = _scored(logs)
    # Phase 3: b leaves; a and c go on scoring.
    assert b.stop() == 0, "a worker leaving the group did not exit cleanly"
    left = _scored(logs)
    _until_scored(logs, {"a": left["a"], "c": left["c"]})
    phases["two"] = _scored(logs)
    load.join()
    ledger = settle(s, load.ends(), timeout_s=240)
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())

    events = {name: log_events(logs / f"worker-{name}.log") for name in "abc"}
    assert events["a"]["partitions_revoked"] >= 1, "the first worker never gave partitions away: no rebalance"
    assert all(w.process is not None and w.process.poll() is None for w in (a, c))
    assert account.audit_rows == account.valid
    report(size.name, "rebalance", {**account.as_dict(), "batches_scored_by_phase": phases})


def _scored(logs: Path) -> dict[str, int]:
    """Batches each worker has scored so far, from its log."""
    return {name: log_events(logs / f"worker-{name}.log")["batch_scored"] if (logs / f"worker-{name}.log").exists()
            else 0 for name in "abc"}


def _until_scored(logs: Path, beyond: dict[str, int], timeout_s: float = PHASE_TIMEOUT_S) -> None:
    """Until each named worker has scored more batches than `beyond` says."""
    deadline = time.monotonic() + timeout_s
    while any(_scored(logs)[name] <= n for name, n in beyond.items()):
        assert time.monotonic() < deadline, f"no batch scored by {sorted(beyond)} within {timeout_s}s: {_scored(logs)}"
        time.sleep(0.1)
