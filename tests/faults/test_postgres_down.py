"""2. Postgres down under a steady load: decisions keep flowing, the audit lag grows, the database gauge says
0 and /readyz stays 200 (Postgres is not a readiness gate); when Postgres returns the audit catches up to
exactly one row each, and the worker never exits."""

from __future__ import annotations

import time

import pytest

from streamer.local.stack import LocalStack
from streamer.local.tally import TopicReader
from tests.faults.conftest import Sizes, own_stack_env
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic
from tests.integration.helpers import eventually, readiness, scrape

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RATE = 200.0
LAG = "streamer_audit_lag_events"
UP = "streamer_audit_database_up"


def test_postgres_down_under_load_delays_only_the_audit_which_then_catches_up_exactly(
    own_stack: LocalStack, size: Sizes
) -> None:
    s = own_stack.settings(topic_partitions=4)
    log = own_stack.run_dir / "worker.log"
    worker = spawn(own_stack_env(own_stack), log, own_stack.workers)
    assert worker.process is not None
    pid = worker.process.pid
    payloads = synthetic(int(RATE * (size.postgres_down_s + 8)), 100, seed=102)  # 5 s before, 3 s after
    load = TrackedPublisher(s, payloads, rate_per_s=RATE).start()
    decisions = TopicReader(s, s.decision_topic)
    try:
        time.sleep(5)
        own_stack.postgres.stop()
        down_at = time.monotonic()
        decisions.read_more()
        before, lags, ups, statuses = len(decisions.records), [], [], set()
        while time.monotonic() - down_at < size.postgres_down_s:
            metrics = scrape(worker.web_port)
            lags.append(metrics[LAG])
            ups.append(metrics[UP])
            statuses.add(readiness(worker.web_port))
            decisions.read_more()
            time.sleep(1.0)
        during = len(decisions.records) - before
        own_stack.postgres.start()
        load.join()
        ledger = settle(s, load.ends(), timeout_s=180)
        account = check_promise(ledger, payloads, load.positions, own_stack.postgres.url)
        eventually(lambda: scrape(worker.web_port)[LAG] == 0, 30, "the audit lag drains to zero")
        eventually(lambda: scrape(worker.web_port)[UP] == 1, 15, "the gauge reports the database up again")
    finally:
        decisions.close()

    assert during >= 0.5 * RATE * size.postgres_down_s, f"only {during} decisions while Postgres was down"
    assert max(lags) >= RATE * size.postgres_down_s / 3, f"the audit lag did not grow: {lags}"
    assert statuses == {200}, f"/readyz answered {statuses} while Postgres was down"
    assert 0 in ups, f"streamer_audit_database_up never said the database was down: {ups}"
    assert worker.process.poll() is None and worker.process.pid == pid, "the worker exited"
    assert account.audit_rows == account.valid
    events = log_events(log)
    assert events["batch_loop_died"] == 0 and events["batch_loop_crashed"] == 0, events
    report(size.name, "postgres-down", {**account.as_dict(), "decisions_while_down": during,
                                        "audit_lag_samples": lags, "readyz_while_down": sorted(statuses),
                                        "database_up_samples": ups,
                                        "audit_batch_failures": events["batch_failed"]})
