"""Issue 14: a decision can be reproduced from its audit row alone, after its input topic is gone, and after
the model that made it was replaced; the protected attributes are never in the clear on the decision topic
or in the table."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from schemas import LoanApplication
from streamer.core.decisions import DecisionEncoder
from streamer.core.policy import DecisionPolicy
from streamer.core.records import HEADER, RECORD, KeyRing, RecordEncoder, generate_keys
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion
from streamer.runtime.clients import common_config
from tests.conftest import KAFKA_ONLY, REPO, Isolated
from tests.integration.helpers import body, cluster_topics, eventually, header_bytes, scrape, wait_until_consumed
from training import store
from training.testing import build_artifact

pytestmark = [pytest.mark.integration, KAFKA_ONLY]  # deleting a topic is Kafka's behaviour under test

PROTECTED_VALUES = ("personal_status", "age_years", "foreign_worker", "male_single", "female_single",
                    "male_divorced", "female_divorced", "male_married")


def _decide(isolated: Isolated, seed: int, count: int, seen: int) -> list[dict[str, object]]:
    """Publish `count` applications; every decision on the topic once the audit has them all."""
    publish(isolated.settings, list(ApplicationFactory(seed=seed).mixed(count, 0)))
    reader = TopicReader(isolated.settings, isolated.settings.decision_topic)
    try:
        assert reader.read_until(lambda r: len(r) >= seen + count, 90), "decisions missing"
        for record in reader.records:
            assert HEADER in header_bytes(record)
            assert not any(p.encode() in (record.value() or b"") for p in PROTECTED_VALUES)
            assert not any(p.encode() in header_bytes(record)[HEADER] for p in PROTECTED_VALUES)
        wait_until_consumed(isolated.settings, isolated.settings.audit_group(), reader.records)
        return [body(r) for r in reader.records]
    finally:
        reader.close()


def _decisions_cli(isolated: Isolated, model_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", "decisions", *argv], cwd=REPO, capture_output=True, text=True,
        env={**isolated.env, "STREAMER_MODEL_DIR": str(model_dir), **env}, timeout=60, check=False,
    )


def _owner(isolated: Isolated) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(isolated.settings.database_url.get_secret_value(), autocommit=True)


def test_a_decision_is_reproduced_from_its_audit_row_after_its_input_topic_and_its_model_are_gone(
    isolated: Isolated, tmp_path: Path
) -> None:
    model_dir = Path(shutil.copytree(REPO / "onnx_models", tmp_path / "models"))
    worker = isolated.start_worker(STREAMER_MODEL_DIR=str(model_dir))
    first = _decide(isolated, seed=61, count=200, seen=0)
    by_v1 = next(d for d in first if d["outcome"] == "decline")

    # A new champion: the first model is no longer served, but stays registered.
    store.promote(model_dir, build_artifact(model_dir, version="2", subsample=0.8, seed=3))
    eventually(lambda: scrape(worker.web_port).get("streamer_model_swaps_total", 0) == 1, 30, "the swap")
    later = _decide(isolated, seed=62, count=50, seen=len(first))
    by_v2 = next(d for d in later if d["model"]["version"] == "2")  # type: ignore[index]
    assert worker.stop() == 0

    with _owner(isolated) as conn:
        rows = conn.execute("SELECT row_to_json(a)::text, application IS NOT NULL FROM decision_audit a").fetchall()
    assert len(rows) == 250 and all(stored for _, stored in rows)
    for text, _ in rows:  # what a DBA's SELECT * shows
        assert not any(value in str(text) for value in PROTECTED_VALUES)

    admin = AdminClient(common_config(isolated.settings))  # held until the answer: a client dropped early fails it
    admin.delete_topics([isolated.settings.input_topic])[isolated.settings.input_topic].result(30)
    eventually(lambda: isolated.settings.input_topic not in cluster_topics(isolated.settings), 30, "topic deleted")

    for decision in (by_v1, by_v2):
        reproduced = _decisions_cli(isolated, model_dir, "reproduce", str(decision["decision_id"]))
        assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
        assert "reproduced: the decision matches" in reproduced.stdout
    assert "german-credit-logreg-1" in _decisions_cli(isolated, model_dir, "reproduce",
                                                      str(by_v1["decision_id"])).stdout

    by_application = _decisions_cli(isolated, model_dir, "reproduce", "--application-id",
                                    str(by_v2["application_id"]))
    assert by_application.returncode == 0 and str(by_v2["decision_id"]) in by_application.stdout

    notice = _decisions_cli(isolated, model_dir, "notice", str(by_v1["decision_id"]))
    assert notice.returncode == 0
    first_reason = by_v1["reason_codes"][0]["description"]  # type: ignore[index]
    assert f"Principal reason(s) for our decision:\n  1. {first_reason}" in notice.stdout

    shown = _decisions_cli(isolated, model_dir, "show", str(by_v1["decision_id"]))
    assert shown.returncode == 0 and '"personal_status"' in shown.stdout  # opened with the key
    without_key = _decisions_cli(isolated, model_dir, "show", str(by_v1["decision_id"]), STREAMER_RECORD_KEYS="")
    assert "<encrypted, key dev>" in without_key.stdout and "personal_status" not in without_key.stdout
    cannot = _decisions_cli(isolated, model_dir, "reproduce", str(by_v1["decision_id"]), STREAMER_RECORD_KEYS="")
    assert cannot.returncode == 2 and "STREAMER_RECORD_KEYS is unset" in cannot.stderr

    with _owner(isolated) as conn:
        conn.execute("UPDATE decision_audit SET probability_of_default = probability_of_default - 0.001"
                     " WHERE decision_id = %s", (by_v1["decision_id"],))
    tampered = _decisions_cli(isolated, model_dir, "reproduce", str(by_v1["decision_id"]))
    assert tampered.returncode == 1
    assert "MISMATCH" in tampered.stdout and "NOT reproduced" in tampered.stdout


def test_a_decision_whose_record_cannot_be_opened_is_audited_without_it_and_cannot_be_reproduced(
    isolated: Isolated,
) -> None:
    worker = isolated.start_worker()
    # Decisions whose records were sealed under a key the audit does not hold (a rotation done in the wrong
    # order), published as a scorer would.
    entry = champion(REPO / "onnx_models")
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    applications = [LoanApplication.model_validate_json(p.value) for p in ApplicationFactory(seed=63).mixed(20, 0)]
    decided = DecisionEncoder(scorer.ref, scorer.feature_names, DecisionPolicy()).encode(
        applications, [0.0] * 20, scorer.score(applications), datetime.now(UTC))
    stranger = KeyRing.parse(generate_keys("other"), None).sealer(RECORD)
    producer = Producer(common_config(isolated.settings))
    for application, decision in zip(applications, decided, strict=True):
        envelope = stranger.seal(RecordEncoder(scorer.feature_names).document(application),
                                 uuid.UUID(decision.decision_id).bytes)
        producer.produce(isolated.settings.decision_topic, decision.value, decision.application_id.encode(),
                         headers=[(HEADER, envelope)])
    assert producer.flush(30) == 0

    eventually(lambda: isolated.audit_rows() == 20, 60, "every decision audited")
    eventually(lambda: scrape(worker.web_port).get("streamer_audit_records_unreadable_total", 0) == 20, 10,
               "the unreadable records counted")
    with _owner(isolated) as conn:
        without = conn.execute("SELECT count(*) FROM decision_audit WHERE application IS NULL").fetchone()
    assert without == (20,)
    cannot = _decisions_cli(isolated, REPO / "onnx_models", "reproduce", decided[0].decision_id)
    assert cannot.returncode == 2 and "without its record" in cannot.stderr
