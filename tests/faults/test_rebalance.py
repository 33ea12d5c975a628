"""4. Rebalance under load: 1 -> 3 -> 2 workers in one consumer group; nothing lost, no audit row twice."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic

pytestmark = [pytest.mark.faults, pytest.mark.integration]

LOAD_S = 25.0


def test_scaling_one_to_three_to_two_workers_under_load_loses_nothing_and_doubles_no_audit_row(
    isolated: Isolated, size: Sizes
) -> None:
    s, logs, workers = isolated.settings, isolated.run_dir, isolated.stack.workers
    payloads = synthetic(size.rebalance_applications, 100, seed=104)
    a = spawn(isolated.env, logs / "worker-a.log", workers)
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / LOAD_S).start()
    time.sleep(3)
    b = spawn(isolated.env, logs / "worker-b.log", workers, wait=False)  # distinct free web ports
    c = spawn(isolated.env, logs / "worker-c.log", workers, wait=False)
    b.wait_ready()
    c.wait_ready()
    time.sleep(4)
    assert b.stop() == 0, "a worker leaving the group did not exit cleanly"
    load.join()
    ledger = settle(s, load.ends(), timeout_s=240)
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())

    events = {name: log_events(logs / f"worker-{name}.log") for name in "abc"}
    assert all(e["partitions_assigned"] >= 1 for e in events.values()), "a worker never got partitions"
    assert events["a"]["partitions_revoked"] >= 1, "the first worker never gave partitions away: no rebalance"
    assert all(w.process is not None and w.process.poll() is None for w in (a, c))
    assert account.audit_rows == account.valid
    report(size.name, "rebalance", {**account.as_dict(),
                                    "batches_scored": {k: e["batch_scored"] for k, e in events.items()}})
