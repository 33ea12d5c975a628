"""STREAMER_STAGES: the scoring and the audit loops in processes of their own (the audit's Python then runs on
another core than the scorer's) still score every application once and audit every decision once, with its
record; an audit-only worker needs no model, and a scoring-only one writes no audit row."""

from __future__ import annotations

import time
import urllib.request

import psycopg
import pytest

from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from tests.conftest import Isolated
from tests.integration.helpers import body, wait_until_consumed
from tests.integration.test_end_to_end import _wait_for

pytestmark = pytest.mark.integration


def test_a_scoring_worker_and_an_audit_worker_together_decide_and_audit_each_application_once(
    isolated: Isolated,
) -> None:
    s = isolated.settings
    payloads = list(ApplicationFactory(seed=44).mixed(400, 50))
    valid = {p.key.decode() for p in payloads if p.expected_reason is None}
    scorer = isolated.start_worker(STREAMER_STAGES="scoring")
    publish(s, payloads)

    decisions, dead_letters = _wait_for(isolated, len(valid), len(payloads) - len(valid))
    assert sorted(body(d)["application_id"] for d in decisions) == sorted(valid)
    assert len(dead_letters) == len(payloads) - len(valid)
    time.sleep(2)  # what a scoring worker would have audited by now, had it an audit loop
    assert isolated.audit_rows() == 0, "a scoring-only worker wrote audit rows"

    no_model = isolated.run_dir / "no-model"
    no_model.mkdir()
    auditor = isolated.start_worker(STREAMER_STAGES="audit", STREAMER_MODEL_DIR=str(no_model))
    wait_until_consumed(s, s.audit_group(), decisions)
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        rows = conn.execute("SELECT application_id, record_key_id IS NOT NULL FROM decision_audit").fetchall()
    assert sorted(app for app, _ in rows) == sorted(valid), "each decision audited exactly once"
    assert all(has_record for _, has_record in rows), "the audit worker opened the scorer's records"

    # What each exports: the model's gauges only where a model serves (an audit-only worker's
    # streamer_model_registry_up at 0 would fire StreamerModelRegistryUnreachable), the audit's lag where it runs.
    scoring_metrics, audit_metrics = _metric_names(scorer.web_port), _metric_names(auditor.web_port)
    assert {"streamer_model_registry_up", "streamer_last_processed_timestamp_seconds"} <= scoring_metrics
    assert not {"streamer_model_registry_up", "streamer_model_info",
                "streamer_last_processed_timestamp_seconds"} & audit_metrics
    assert "streamer_audit_rows_written_total" in audit_metrics


def _metric_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
