"""8. Offered load at about 3x capacity: consumer lag grows, the worker's memory stays bounded, nothing
crashes, and the lag drains afterwards with every application decided and audited once.

Capacity is measured first, roughly: a burst published as fast as possible, divided by the time the
scorer took to commit it. Lag is records our producer had acknowledged minus the scorer group's
committed offsets (never Tansu's high watermark, which is wrong). Bounded: RSS never exceeds the idle
worker's by more than 300 MB (librdkafka may prefetch up to 64 MB per consumer; batches are 1,000 records).
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import (
    TrackedPublisher,
    check_promise,
    committed_lag,
    log_events,
    publish_all,
    report,
    rss_mb,
    settle,
    spawn,
    synthetic,
    wait_committed,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

BURST = 10_000
BOUND_MB = 300.0


def test_three_times_capacity_grows_lag_within_bounded_memory_and_drains_after(
    isolated: Isolated, size: Sizes
) -> None:
    s = isolated.settings
    worker = spawn(isolated.env, isolated.run_dir / "worker.log", isolated.stack.workers)
    assert worker.process is not None
    pid = worker.process.pid
    idle = rss_mb(pid)

    burst = synthetic(BURST, 0, seed=108)
    started = time.monotonic()
    first = publish_all(s, burst)
    wait_committed(s, s.scorer_group(), first.ends(), timeout_s=120)
    capacity = BURST / (time.monotonic() - started)

    offered = 3 * capacity
    payloads = synthetic(int(offered * size.overload_s), 100, seed=118)
    load = TrackedPublisher(s, payloads, rate_per_s=offered).start()
    started = time.monotonic()
    samples = []
    while load.sent < len(payloads):
        time.sleep(1.0)
        lag = committed_lag(s, s.scorer_group(), first.ends() | load.ends())
        samples.append((round(time.monotonic() - started, 1), load.sent, lag, round(rss_mb(pid), 1)))
    load.join()
    achieved = len(payloads) / (time.monotonic() - started)
    peak_lag = max(lag for _, _, lag, _ in samples)
    drained = time.monotonic()
    ledger = settle(s, first.ends() | load.ends(), timeout_s=300)
    drain_s = time.monotonic() - drained
    account = check_promise(ledger, burst + payloads, first.positions + load.positions,
                            s.database_url.get_secret_value())

    assert achieved >= 2 * capacity, f"offered only {achieved:.0f}/s against a capacity of {capacity:.0f}/s"
    assert peak_lag >= 0.25 * len(payloads), f"lag did not grow: {samples}"
    assert samples[-1][2] > samples[0][2], f"lag did not grow: {samples}"
    assert max(rss for *_, rss in samples) - idle < BOUND_MB, f"RSS unbounded (idle {idle:.0f} MB): {samples}"
    assert worker.process.poll() is None and worker.process.pid == pid
    assert log_events(isolated.run_dir / "worker.log")["batch_failed"] == 0
    assert account.audit_rows == account.valid
    report(size.name, "overload", {
        **account.as_dict(), "capacity_per_s": round(capacity), "offered_per_s": round(achieved),
        "peak_lag": peak_lag, "drain_s": round(drain_s, 1), "idle_rss_mb": round(idle, 1),
        "samples_t_sent_lag_rss": samples,
    })
