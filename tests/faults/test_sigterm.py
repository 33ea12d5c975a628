"""7. SIGTERM under load: the worker exits 0 within the grace period, and its in-flight work is either
committed or re-read by the next worker, so the audit ends with exactly one row per valid application."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic

pytestmark = [pytest.mark.faults, pytest.mark.integration]

GRACE_S = 60.0  # terminationGracePeriodSeconds in k8s/base/app/deployment.yaml
LOAD_S = 12.0

_HALF_WRITTEN = """
SELECT count(*) FROM decision_audit
WHERE outcome IS NULL OR probability_of_default IS NULL OR model_sha256 IS NULL OR decided_at IS NULL
   OR reason_codes IS NULL OR source_topic IS NULL OR source_offset IS NULL
"""


def test_sigterm_under_load_exits_zero_in_time_and_leaves_no_half_written_work(
    isolated: Isolated, size: Sizes
) -> None:
    s = isolated.settings
    payloads = synthetic(size.sigterm_applications, 100, seed=107)
    first = spawn(isolated.env, isolated.run_dir / "worker-first.log", isolated.stack.workers)
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / LOAD_S).start()
    time.sleep(LOAD_S / 3)
    assert log_events(isolated.run_dir / "worker-first.log")["batch_scored"] > 0, "the worker is not working yet"

    asked = time.monotonic()
    code = first.stop(timeout_s=GRACE_S)
    took = time.monotonic() - asked
    first_log = log_events(isolated.run_dir / "worker-first.log")
    second = spawn(isolated.env, isolated.run_dir / "worker-second.log", isolated.stack.workers)
    load.join()
    ledger = settle(s, load.ends())
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        half_written = conn.execute(_HALF_WRITTEN).fetchone()

    assert code == 0, f"the worker exited {code} on SIGTERM"
    assert took < GRACE_S
    assert first_log["final_commit_failed"] == 0 and first_log["batch_loop_crashed"] == 0, first_log
    assert account.audit_rows == account.valid
    assert half_written == (0,)
    assert second.process is not None and second.process.poll() is None
    report(size.name, "sigterm", {**account.as_dict(), "exit_code": code, "exit_s": round(took, 2)})
