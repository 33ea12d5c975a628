"""3. Broker trouble mid-stream, on servers of the test's own.

A frozen broker (SIGSTOP, then SIGCONT) loses nothing and costs the worker no restart. A broker killed
and restarted on the same port comes back empty (Tansu keeps its log in memory, so that data is the
broker's to lose): the worker must reconnect by itself and score new applications without a restart.
The test re-creates the topics right away, as an operator would; whether the worker or the broker's
auto-creation got there first is reported. The consumer groups' offsets are gone with the log, so the
worker must also not carry its old offsets over into the new log.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streamer.config import Settings
from streamer.local.stack import LocalStack, WorkerProcess
from streamer.runtime.clients import common_config
from streamer.runtime.topics import ensure_topics
from tests.faults.conftest import Sizes, own_stack_env
from tests.faults.harness import (
    TrackedPublisher,
    audit_rows,
    check_promise,
    log_events,
    publish_all,
    report,
    settle,
    spawn,
    synthetic,
)
from tests.integration.helpers import committed

pytestmark = [pytest.mark.faults, pytest.mark.integration]

RATE = 200.0
WATCHED = ("producer_renewed", "topics_recreated", "batch_failed", "commit_on_revoke_failed")


def _start(stack: LocalStack) -> tuple[Settings, Path, WorkerProcess, int]:
    s = stack.settings(topic_partitions=4)
    log = stack.run_dir / "worker.log"
    worker = spawn(own_stack_env(stack), log, stack.workers)
    assert worker.process is not None and stack.kafka.pid is not None
    return s, log, worker, worker.process.pid


def _alive(worker: WorkerProcess, pid: int) -> bool:
    return worker.process is not None and worker.process.poll() is None and worker.process.pid == pid


def test_a_broker_frozen_mid_stream_costs_no_record_and_no_worker_restart(own_stack: LocalStack, size: Sizes) -> None:
    s, log, worker, pid = _start(own_stack)
    payloads = synthetic(int(RATE * (size.broker_frozen_s + 10)), 100, seed=103)
    load = TrackedPublisher(s, payloads, rate_per_s=RATE).start()
    time.sleep(3)
    assert own_stack.kafka.pid is not None
    os.kill(own_stack.kafka.pid, signal.SIGSTOP)  # the process stops answering; its sockets stay open
    try:
        time.sleep(size.broker_frozen_s)
    finally:
        os.kill(own_stack.kafka.pid, signal.SIGCONT)
    load.join()
    ledger = settle(s, load.ends(), timeout_s=120)
    account = check_promise(ledger, payloads, load.positions, own_stack.postgres.url)

    assert _alive(worker, pid), "the worker restarted after the freeze"
    assert account.audit_rows == account.valid
    events = log_events(log)
    report(size.name, "broker-frozen", {**account.as_dict(), "frozen_s": size.broker_frozen_s,
                                        "worker_events": {k: events[k] for k in WATCHED}})


def test_a_broker_restarted_empty_is_reconnected_to_without_a_worker_restart(
    own_stack: LocalStack, size: Sizes
) -> None:
    s, log, worker, pid = _start(own_stack)
    first = synthetic(1_000, 100, seed=123)
    settle(s, publish_all(s, first).ends())
    before = {a for _, a in audit_rows(own_stack.postgres.url)}

    assert own_stack.kafka.pid is not None
    os.kill(own_stack.kafka.pid, signal.SIGKILL)
    own_stack.kafka.stop()
    own_stack.kafka.start()  # the same port, an empty in-memory log
    restarted = time.monotonic()
    already = set(AdminClient(common_config(s)).list_topics(timeout=10).topics)
    created_by_test = ensure_topics(s, [s.input_topic, s.decision_topic, s.dlq_topic])
    fresh = synthetic(3_000, 100, seed=113)  # more than before: kept old positions show as a gap
    second = publish_all(s, fresh)
    # Up to a delivery timeout (30 s) for the old producer id to be given up, then a group rejoin.
    ledger = settle(s, second.ends(), timeout_s=90)
    recovered_s = time.monotonic() - restarted
    account = check_promise(ledger, fresh, second.positions, own_stack.postgres.url, extra_audited=before)
    offsets = committed(s, s.scorer_group(), list(second.ends()))

    assert _alive(worker, pid), "the worker restarted after the broker did"
    beyond = {k: (offsets[k], end) for k, end in second.ends().items() if offsets.get(k, -1) > end}
    assert not beyond, f"the scorer committed offsets beyond the new log's end (old offsets carried over): {beyond}"
    events = log_events(log)
    report(size.name, "broker-restarted", {
        **account.as_dict(), "recovered_s": round(recovered_s, 1), "topics_present_at_restart": sorted(already),
        "topics_created_by_test": created_by_test, "worker_events": {k: events[k] for k in WATCHED},
    })
