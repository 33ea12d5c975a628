"""Applications in, decisions, dead letters and audit rows out, on the embedded broker and Postgres."""

from __future__ import annotations

import pytest
from confluent_kafka import Message

from schemas.application import LoanApplication
from streamer.core.policy import DecisionPolicy, adverse_reasons
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory, SamplePayload
from streamer.local.tally import TopicReader
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion
from tests.conftest import Isolated
from tests.integration.helpers import body, header_bytes, wait_until_consumed

pytestmark = pytest.mark.integration

TOTAL, INVALID_EVERY = 2000, 50  # 40 invalid payloads, cycling through every kind of invalid


def _wait_for(
    isolated: Isolated, decisions: int, dead_letters: int, timeout_s: float = 120.0
) -> tuple[list[Message], list[Message]]:
    s = isolated.settings
    decision_reader, dlq_reader = TopicReader(s, s.decision_topic), TopicReader(s, s.dlq_topic)
    try:
        decision_reader.read_until(lambda r: len(r) >= decisions, timeout_s)
        dlq_reader.read_until(lambda r: len(r) >= dead_letters, timeout_s)
        decision_reader.read_more(1.0)  # anything beyond the expected count would show up here
        dlq_reader.read_more(0.5)
        return decision_reader.records, dlq_reader.records
    finally:
        decision_reader.close()
        dlq_reader.close()


def _audit_rows_once_caught_up(isolated: Isolated, decision_records: list[Message]) -> int:
    """Audit rows after the audit stage has committed past every decision event we saw."""
    wait_until_consumed(isolated.settings, isolated.settings.audit_group(), decision_records)
    return isolated.audit_rows()


def _expected(payloads: list[SamplePayload], isolated: Isolated) -> dict[str, tuple[float, str, list[str]]]:
    """What the shipped model and policy give for each valid application, computed directly."""
    entry = champion(isolated.settings.model_dir)
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    policy = DecisionPolicy()
    applications = [LoanApplication.model_validate_json(p.value) for p in payloads if p.expected_reason is None]
    scores = scorer.score(applications)
    expected = {}
    for i, application in enumerate(applications):
        p = float(scores.probability_of_default[i])
        outcome = policy.outcome(p)
        reasons = adverse_reasons(outcome, scorer.feature_names, scores.contributions[i].tolist())
        expected[application.application_id] = (p, outcome.value, [r.code for r in reasons])
    return expected


def test_every_application_ends_as_one_decision_or_one_dead_letter_and_one_audit_row(isolated: Isolated) -> None:
    payloads = list(ApplicationFactory(seed=11).mixed(TOTAL, INVALID_EVERY))
    invalid = [p for p in payloads if p.expected_reason]
    assert len(invalid) == 40
    isolated.start_worker()

    publish(isolated.settings, payloads)
    decision_records, dlq_records = _wait_for(isolated, TOTAL - 40, 40)

    assert len(decision_records) == 1960
    assert len(dlq_records) == 40
    assert _audit_rows_once_caught_up(isolated, decision_records) == 1960

    expected = _expected(payloads, isolated)
    for record in decision_records:
        decision = body(record)
        p, outcome, reasons = expected[decision["application_id"]]
        assert record.key() == decision["application_id"].encode()
        assert decision["probability_of_default"] == pytest.approx(p, abs=1e-6)
        assert decision["outcome"] == outcome
        assert [r["code"] for r in decision["reason_codes"]] == reasons
    assert {body(r)["application_id"] for r in decision_records} == set(expected)

    by_key = {p.key: p for p in invalid}
    for record in dlq_records:
        headers = header_bytes(record)
        original = by_key[record.key() or b""]
        assert record.value() == original.value or (record.value() is None and original.value == b"")
        assert headers["dlq.reason"].decode() == original.expected_reason
        assert headers["dlq.error"]
        assert headers["dlq.source.topic"].decode() == isolated.settings.input_topic
        assert int(headers["dlq.source.offset"]) >= 0
    assert {r.key() for r in dlq_records} == set(by_key)


def test_a_restarted_worker_given_the_same_applications_adds_no_audit_rows(isolated: Isolated) -> None:
    payloads = list(ApplicationFactory(seed=12).mixed(TOTAL, INVALID_EVERY))
    worker = isolated.start_worker()
    publish(isolated.settings, payloads)
    first_round, _ = _wait_for(isolated, 1960, 40)
    assert _audit_rows_once_caught_up(isolated, first_round) == 1960

    assert worker.stop() == 0
    isolated.start_worker()
    publish(isolated.settings, payloads)
    decision_records, dlq_records = _wait_for(isolated, 2 * 1960, 2 * 40)

    assert len(decision_records) == 2 * 1960
    assert len(dlq_records) == 2 * 40
    assert len({body(r)["decision_id"] for r in decision_records}) == 1960
    assert _audit_rows_once_caught_up(isolated, decision_records) == 1960
