"""10. A zombie worker (exactly_once, Apache Kafka): one of two workers is frozen (SIGSTOP) under load with a
transaction open, the group moves its partitions to the other, and then it wakes (SIGCONT) and commits.
Where the freeze lands decides what the broker does, and both are correct (KIP-447):
- before the zombie sent its offsets: the group metadata it sends on waking is stale, the broker refuses
  them, and the zombie drops its transaction;
- after it sent them: the offsets are pending, so the new owner's offset fetch waits (UNSTABLE_OFFSET_COMMIT)
  until the zombie commits, and the new owner starts after its records.
Either way a read_committed consumer sees every application decided exactly once.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import KAFKA_ONLY, Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import (
    TrackedPublisher,
    check_promise,
    log_events,
    records_of_aborted_transactions,
    report,
    settle,
    spawn,
    synthetic,
)
from tests.faults.test_rebalance import _events, _scored, _until_scored

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.exactly_once_only, KAFKA_ONLY]

SESSION_MS = 6000  # the frozen member is out of the group after this long
FROZEN_S = 9.0  # past the session timeout, well within the transaction timeout: the group fences, not the timer
# A transaction is open nearly all the time, so the freeze lands in one (at 100 ms it often fell between two).
COMMIT_INTERVAL_MS = 1500
TRANSACTION_TIMEOUT_MS = 30_000


def test_a_frozen_worker_that_wakes_after_the_group_moved_on_is_fenced_and_publishes_nothing_visible(
    isolated: Isolated, size: Sizes
) -> None:
    s, logs, workers = isolated.settings, isolated.run_dir, isolated.stack.workers
    env = {**isolated.env, "STREAMER_SESSION_TIMEOUT_MS": str(SESSION_MS), "STREAMER_HEARTBEAT_INTERVAL_MS": "1500",
           "STREAMER_COMMIT_INTERVAL_MS": str(COMMIT_INTERVAL_MS),
           "STREAMER_TRANSACTION_TIMEOUT_MS": str(TRANSACTION_TIMEOUT_MS)}
    payloads = synthetic(size.rebalance_applications, 100, seed=110)
    zombie = spawn(env, logs / "worker-a.log", workers)
    survivor = spawn(env, logs / "worker-b.log", workers)
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / 30.0).start()
    _until_scored(logs, {"a": 0, "b": 0})
    assert zombie.process is not None
    pid = zombie.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen_at = _scored(logs)
        time.sleep(FROZEN_S)
        _until_scored(logs, {"b": frozen_at["b"]})  # the survivor goes on, with the zombie's partitions
    finally:
        os.kill(pid, signal.SIGCONT)
    load.join()
    ledger = settle(s, load.ends(), timeout_s=240)
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())  # 0 duplicates

    woke = log_events(logs / "worker-a.log")
    fenced = woke["transaction_dropped"] + woke["transactional_producer_renewed"]
    # batch_scored is logged once its transaction committed; "seconds" runs from the batch's scoring
    held = sum(float(str(e["seconds"])) >= FROZEN_S for e in _events(logs / "worker-a.log", "batch_scored"))
    assert fenced + held > 0, f"no transaction of the zombie spanned its freeze, so nothing was shown: {dict(woke)}"
    assert zombie.process.poll() is None and survivor.process is not None and survivor.process.poll() is None
    assert account.audit_rows == account.valid
    report(size.name, "zombie", {**account.as_dict(), "zombie_refusals": fenced,
                                 "zombie_batches_committed_across_the_freeze": held,
                                 "aborted_decision_records": records_of_aborted_transactions(s)})
