"""STREAMER_STAGES: the scoring and the audit loops in processes of their own (the audit's Python then runs on
another core than the scorer's) still score every application once and audit every decision once, with its
record; an audit-only worker needs no model, and a scoring-only one writes no audit row."""

from __future__ import annotations

import time

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
    isolated.start_worker(STREAMER_STAGES="scoring")
    publish(s, payloads)

    decisions, dead_letters = _wait_for(isolated, len(valid), len(payloads) - len(valid))
    assert sorted(body(d)["application_id"] for d in decisions) == sorted(valid)
    assert len(dead_letters) == len(payloads) - len(valid)
    time.sleep(2)  # what a scoring worker would have audited by now, had it an audit loop
    assert isolated.audit_rows() == 0, "a scoring-only worker wrote audit rows"

    no_model = isolated.run_dir / "no-model"
    no_model.mkdir()
    isolated.start_worker(STREAMER_STAGES="audit", STREAMER_MODEL_DIR=str(no_model))
    wait_until_consumed(s, s.audit_group(), decisions)
    with psycopg.connect(s.database_url.get_secret_value()) as conn:
        rows = conn.execute("SELECT application_id, record_key_id IS NOT NULL FROM decision_audit").fetchall()
    assert sorted(app for app, _ in rows) == sorted(valid), "each decision audited exactly once"
    assert all(has_record for _, has_record in rows), "the audit worker opened the scorer's records"
