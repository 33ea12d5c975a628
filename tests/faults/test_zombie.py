"""10. A zombie worker (exactly_once, Apache Kafka): one of two workers is frozen (SIGSTOP) under load with a
transaction open, the group moves its partitions to the other, and then it wakes (SIGCONT) and tries to
commit. The group metadata sent with its offsets is stale, so the broker refuses them and its transaction
is aborted: a read_committed consumer sees nothing it produced twice, and every application exactly once.
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
from tests.faults.test_rebalance import _scored, _until_scored

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.exactly_once_only, KAFKA_ONLY]

SESSION_MS = 6000  # the frozen member is out of the group after this long
FROZEN_S = 9.0  # past the session timeout, within the transaction timeout (10 s): the group fences, not the timer


def test_a_frozen_worker_that_wakes_after_the_group_moved_on_is_fenced_and_publishes_nothing_visible(
    isolated: Isolated, size: Sizes
) -> None:
    s, logs, workers = isolated.settings, isolated.run_dir, isolated.stack.workers
    env = {**isolated.env, "STREAMER_SESSION_TIMEOUT_MS": str(SESSION_MS), "STREAMER_HEARTBEAT_INTERVAL_MS": "1500"}
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
    assert fenced > 0, f"the zombie was never refused a commit: {dict(woke)}"
    assert zombie.process.poll() is None and survivor.process is not None and survivor.process.poll() is None
    assert account.audit_rows == account.valid
    report(size.name, "zombie", {**account.as_dict(), "zombie_refusals": fenced,
                                 "aborted_decision_records": records_of_aborted_transactions(s)})
