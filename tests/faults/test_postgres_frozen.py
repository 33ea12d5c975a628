"""2b. The Postgres backends serving the audit frozen (SIGSTOP) under a steady load: a database that accepts
packets and answers nothing, as after a failover that left half-open connections. Every write on them is
given up after the write timeout and redone on a new connection; the audit consumer keeps polling, so it
stays in its group; when the backends resume the audit has every decision once, and the worker never exited.

On Apache Kafka only: the hazard is Kafka's group protocol evicting a consumer that stops polling
(max.poll.interval.ms), shortened here below the freeze so that a loop that stops polling is seen.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from streamer.local.stack import LocalStack
from tests.conftest import KAFKA_ONLY
from tests.faults.conftest import Sizes, own_stack_env
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic
from tests.integration.helpers import eventually

pytestmark = [pytest.mark.faults, pytest.mark.integration, KAFKA_ONLY]

RATE = 200.0
MAX_POLL_INTERVAL_MS = 10_000  # librdkafka allows no less than session.timeout.ms
WRITE_TIMEOUT_S = "1"  # the worker gives a write up 5 s later; at 3600 this test fails (no write given up)


def _audit_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'streamer-audit'").fetchall()
    return [int(pid) for (pid,) in rows]


@contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """The processes stopped, and resumed on leaving whatever happened."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _revocations(log: Path, loop: str) -> int:
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"partitions_revoked"' in line and json.loads(line).get("loop") == loop:
            count += 1
    return count


def test_the_audits_postgres_frozen_under_load_costs_a_delay_never_the_group_or_a_row(
    own_stack: LocalStack, size: Sizes
) -> None:
    s = own_stack.settings(topic_partitions=4)
    log = own_stack.run_dir / "worker.log"
    env = own_stack_env(own_stack, STREAMER_AUDIT_WRITE_TIMEOUT_S=WRITE_TIMEOUT_S,
                        STREAMER_MAX_POLL_INTERVAL_MS=str(MAX_POLL_INTERVAL_MS))
    worker = spawn(env, log, own_stack.workers)
    assert worker.process is not None
    pid = worker.process.pid
    payloads = synthetic(int(RATE * (size.postgres_frozen_s + 6)), 100, seed=104)  # 3 s before, 3 s after
    load = TrackedPublisher(s, payloads, rate_per_s=RATE).start()
    time.sleep(3)
    eventually(lambda: len(_audit_backends(own_stack.postgres.url)) > 0, 15, "an audit connection")
    backends = _audit_backends(own_stack.postgres.url)
    with frozen(backends):
        time.sleep(size.postgres_frozen_s)
        failures_while_frozen = log_events(log)["batch_failed"]
    load.join()
    ledger = settle(s, load.ends(), timeout_s=120)
    account = check_promise(ledger, payloads, load.positions, own_stack.postgres.url)
    events = log_events(log)

    assert failures_while_frozen >= 1, "no audit write was given up while its backend was frozen"
    assert _revocations(log, "audit") == 0, "the audit consumer left its group (it stopped polling)"
    assert worker.process.poll() is None and worker.process.pid == pid, "the worker exited"
    assert account.audit_rows == account.valid
    assert events["batch_loop_crashed"] == 0, events
    report(size.name, "postgres-frozen", {**account.as_dict(), "frozen_s": size.postgres_frozen_s,
                                          "frozen_backends": len(backends),
                                          "audit_batch_failures": events["batch_failed"]})
