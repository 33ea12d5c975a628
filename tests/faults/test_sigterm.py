"""7. SIGTERM under load: the worker exits 0 within the grace period, and its in-flight work is either
committed or re-read by the next worker, so the audit ends with exactly one row per valid application, each
holding the values of the decision event it was written from."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import Ledger, TrackedPublisher, check_promise, log_events, report, settle, spawn, synthetic

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.both_guarantees]

GRACE_S = 60.0  # terminationGracePeriodSeconds in k8s/base/app/deployment.yaml
LOAD_S = 12.0

_AUDIT = """
SELECT decision_id::text, application_id, outcome, probability_of_default, model_name, model_version, model_sha256,
       policy_version, reason_codes, decided_at, latency_ms, source_topic, source_partition, source_offset
FROM decision_audit
"""


def _wait_scoring(worker_log: Path, timeout_s: float) -> None:
    """Until the worker has logged a scored batch."""
    deadline = time.monotonic() + timeout_s
    while log_events(worker_log)["batch_scored"] == 0:
        assert time.monotonic() < deadline, f"the worker scored no batch in {timeout_s}s; see {worker_log}"
        time.sleep(0.1)


def _audited(decision: dict[str, Any]) -> tuple[object, ...]:
    """The audit columns (up to latency_ms) a decision event must become."""
    model = decision["model"]
    return (
        decision["decision_id"], decision["application_id"], decision["outcome"], decision["probability_of_default"],
        model["name"], model["version"], model["sha256"], decision["policy_version"], decision["reason_codes"],
        datetime.fromisoformat(decision["decided_at"]), decision["latency_ms"],
    )


def _rows_unlike_their_decision(ledger: Ledger, database_url: str) -> list[tuple[tuple[object, ...], bytes | None]]:
    """Audit rows that are not the decision event found at their source position on the decision topic."""
    published = {(m.topic(), m.partition(), m.offset()): m.value() or b"" for m in ledger.decisions}
    unlike: list[tuple[tuple[object, ...], bytes | None]] = []
    with psycopg.connect(database_url) as conn:
        for row in conn.execute(_AUDIT):
            value = published.get((row[11], row[12], row[13]))
            if value is None or row[:11] != _audited(json.loads(value)):
                unlike.append((row, value))
    return unlike


def test_sigterm_under_load_exits_zero_in_time_and_leaves_no_half_written_work(
    isolated: Isolated, size: Sizes
) -> None:
    s = isolated.settings
    payloads = synthetic(size.sigterm_applications, 100, seed=107)
    first = spawn(isolated.env, isolated.run_dir / "worker-first.log", isolated.stack.workers)
    load = TrackedPublisher(s, payloads, rate_per_s=len(payloads) / LOAD_S).start()
    _wait_scoring(isolated.run_dir / "worker-first.log", timeout_s=LOAD_S)
    in_flight = len(payloads) - load.sent

    asked = time.monotonic()
    code = first.stop(timeout_s=GRACE_S)
    took = time.monotonic() - asked
    first_log = log_events(isolated.run_dir / "worker-first.log")
    second = spawn(isolated.env, isolated.run_dir / "worker-second.log", isolated.stack.workers)
    load.join()
    ledger = settle(s, load.ends())
    account = check_promise(ledger, payloads, load.positions, s.database_url.get_secret_value())
    unlike = _rows_unlike_their_decision(ledger, s.database_url.get_secret_value())

    assert in_flight > 0, "the load had ended before SIGTERM: nothing was flowing"
    assert code == 0, f"the worker exited {code} on SIGTERM"
    assert took < GRACE_S
    assert first_log["final_commit_failed"] == 0 and first_log["batch_loop_crashed"] == 0, first_log
    assert account.audit_rows == account.valid
    assert not unlike, f"{len(unlike)} audit rows differ from the decision they were written from, e.g. {unlike[:2]}"
    assert second.process is not None and second.process.poll() is None
    report(size.name, "sigterm", {**account.as_dict(), "exit_code": code, "exit_s": round(took, 2)})
