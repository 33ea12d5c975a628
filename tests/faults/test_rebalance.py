"""4. Rebalance under load: 1 -> 3 -> 2 workers in one consumer group, then (Apache Kafka) a rolling restart of
both (each stopped with SIGTERM and replaced); nothing lost, no audit row twice, duplicate decision events counted, and
each worker scores during each phase it is part of (every phase is a condition wait, not a fixed sleep).
On Apache Kafka the groups rebalance cooperatively (only the partitions that move are revoked)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.both_guarantees]

LOAD_S = {"tansu": 25.0, "kafka": 40.0}  # on Kafka the load lasts into the rolling restart
NAMES = ("a", "b", "c", "a2", "c2")
PHASE_TIMEOUT_S = 20.0


def test_scaling_one_to_three_to_two_workers_then_a_rolling_restart_loses_nothing_and_doubles_no_audit_row(
    isolated: Isolated, size: Sizes
) -> None:
    s, logs, workers = isolated.settings, isolated.run_dir, isolated.stack.workers
    payloads = synthetic(size.rebalance_applications, 100, seed=104)
    a = spawn(isolated.env, logs / "worker-a.log", workers)
    load_s = LOAD_S[isolated.stack.broker_kind]
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / load_s).start()
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
    # Phase 4, on Apache Kafka (what production runs; Tansu's slow group joins would only add time): a rolling
    # restart, one worker at a time; each replacement holds partitions before the next goes (the load may be
    # over by then: holding, not scoring, is the condition).
    rolling = ((a, "a2"), (c, "c2")) if isolated.stack.broker_kind == "kafka" else ()
    running = [a, c]
    for old, name in rolling:
        assert old.stop() == 0, "a worker stopped for a rolling restart did not exit cleanly"
        running = [w for w in running if w is not old] + [spawn(isolated.env, logs / f"worker-{name}.log", workers)]
        _until_holding(logs / f"worker-{name}.log")
    if rolling:
        phases["restarted"] = _scored(logs)
    load.join()
    ledger = settle(s, load.ends(), timeout_s=240)
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())
    phases["end"] = _scored(logs)

    events = {name: log_events(logs / f"worker-{name}.log") for name in NAMES if (logs / f"worker-{name}.log").exists()}
    assert events["a"]["partitions_revoked"] >= 1, "the first worker never gave partitions away: no rebalance"
    assert all(w.process is not None and w.process.poll() is None for w in running), "a running worker exited"
    assert account.audit_rows == account.valid
    report(size.name, "rebalance", {**account.as_dict(), "batches_scored_by_phase": phases})


def _scored(logs: Path) -> dict[str, int]:
    """Batches each worker has scored so far, from its log."""
    return {name: log_events(logs / f"worker-{name}.log")["batch_scored"] if (logs / f"worker-{name}.log").exists()
            else 0 for name in NAMES}


def _until_holding(log: Path, timeout_s: float = PHASE_TIMEOUT_S) -> None:
    """Until the worker's scoring loop was assigned at least one partition."""
    deadline = time.monotonic() + timeout_s
    while not any(e.get("loop") == "scorer" and e.get("partitions") for e in _events(log, "partitions_assigned")):
        assert time.monotonic() < deadline, f"{log.name}: no partition assigned to the scorer within {timeout_s}s"
        time.sleep(0.1)


def _events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def _until_scored(logs: Path, beyond: dict[str, int], timeout_s: float = PHASE_TIMEOUT_S) -> None:
    """Until each named worker has scored more batches than `beyond` says."""
    deadline = time.monotonic() + timeout_s
    while any(_scored(logs)[name] <= n for name, n in beyond.items()):
        assert time.monotonic() < deadline, f"no batch scored by {sorted(beyond)} within {timeout_s}s: {_scored(logs)}"
        time.sleep(0.1)
