"""What an operator sees: metrics that move, health and readiness, JSON logs without personal data."""

from __future__ import annotations

import json
import urllib.request

import pytest

from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory, SamplePayload
from streamer.local.tally import TopicReader
from tests.conftest import Isolated
from tests.integration.helpers import eventually, readiness, scrape, wait_until_consumed

pytestmark = pytest.mark.integration


def _with_personal_data(payloads: list[SamplePayload]) -> list[SamplePayload]:
    """Producers sometimes send what they should not: names and emails, valid events and invalid ones."""
    out = []
    for p in payloads:
        try:
            doc = json.loads(p.value)
        except ValueError:
            out.append(p)
            continue
        if isinstance(doc, dict):
            doc["full_name"] = "Jane Q. Applicant"
            doc["email"] = "jane.applicant@example.com"
        out.append(SamplePayload(p.key, json.dumps(doc).encode(), p.expected_reason))
    return out


def test_metrics_health_and_logs_reflect_the_work_done(isolated: Isolated) -> None:
    worker = isolated.start_worker()
    port = worker.web_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        assert reply.status == 200
    assert readiness(port) == 200
    before = scrape(port)
    assert before.get("streamer_applications_consumed_total", 0) == 0

    payloads = _with_personal_data(list(ApplicationFactory(seed=31).mixed(300, 30)))
    publish(isolated.settings, payloads)
    reader = TopicReader(isolated.settings, isolated.settings.decision_topic)
    try:
        assert reader.read_until(lambda r: len(r) >= 290, 60)
        wait_until_consumed(isolated.settings, isolated.settings.audit_group(), reader.records)
    finally:
        reader.close()

    eventually(lambda: scrape(port)["streamer_audit_lag_events"] == 0, 20, "audit lag back to zero")
    after = scrape(port)
    assert after["streamer_applications_consumed_total"] == 300
    decided = sum(v for k, v in after.items() if k.startswith("streamer_decisions_total{"))
    assert decided == 290
    dead = sum(v for k, v in after.items() if k.startswith("streamer_dead_letters_total{"))
    assert dead == 10
    assert after["streamer_dead_letters_total{reason=invalid_json}"] >= 1
    assert after["streamer_audit_rows_written_total"] == 290
    assert after["streamer_batch_size_count"] >= 1
    assert after["streamer_inference_seconds_count"] >= 1
    assert after["streamer_end_to_end_latency_seconds_count"] == 290
    assert after["streamer_audit_write_seconds_count"] >= 1
    assert after["streamer_last_processed_timestamp_seconds"] > 0
    [model] = [k for k in after if k.startswith("streamer_model_info{")]
    assert "sha256=" in model and "version=1" in model

    log = (isolated.run_dir / "worker.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    batches = [r for r in records if r.get("event") == "batch_scored"]
    assert sum(r["records"] for r in batches) == 300  # one line per batch, not one per event
    assert len(batches) < 300
    assert "Jane" not in log and "jane.applicant" not in log and "example.com" not in log
