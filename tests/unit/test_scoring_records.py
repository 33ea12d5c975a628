"""The scorer attaches each decision's record as one sealed header; the decision itself is unchanged."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson

from schemas import LoanApplication
from streamer.core.policy import DecisionPolicy
from streamer.core.records import HEADER, RECORD, KeyRing, generate_keys, joined, split
from streamer.local.synthetic import ApplicationFactory
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, load_entry
from streamer.runtime.publisher import OutboundRecord
from streamer.stages.scoring import ScoringStage, ScoringTopics
from tests.unit.test_scoring_retry import ApplicationRecord

REPO = Path(__file__).resolve().parents[2]
TOPICS = ScoringTopics("loan-decisions", "loan-applications-dlq")


def _decide(
    keys: KeyRing | None, payloads: list[bytes] | None = None
) -> tuple[list[bytes], dict[str, LoanApplication], ModelSlot, list[OutboundRecord]]:
    model = ModelSlot(load_entry(champion(REPO / "onnx_models")))
    payloads = payloads or [p.value for p in ApplicationFactory(seed=5).mixed(50, 0)]
    stage = ScoringStage(model, DecisionPolicy(), None, TOPICS, 65_536, "urn:streamer:test", record_keys=keys)
    decided = stage.decide([ApplicationRecord(i, v) for i, v in enumerate(payloads)])  # type: ignore[misc]
    applications = {a.application_id: a for a in map(LoanApplication.model_validate_json, payloads)}
    return payloads, applications, model, list(decided.records)


class TestScoringStageRecords:
    def test_each_decision_carries_its_record_sealed_in_one_header(self) -> None:
        keys = KeyRing.parse(generate_keys("k1"), None)
        _, applications, model, records = _decide(keys)
        assert len(records) == 50
        for record in records:
            decision = orjson.loads(record.value or b"")
            [envelope] = [value for name, value in record.headers or [] if name == HEADER]
            assert isinstance(envelope, bytes)
            assert b"personal_status" not in envelope and b"applicant" not in envelope
            parts = split(keys.open(envelope, RECORD, uuid.UUID(decision["decision_id"]).bytes))
            application = applications[decision["application_id"]]
            assert parts.schema_version == 1
            whole = joined(orjson.loads(parts.application), parts.protected)
            assert LoanApplication.model_validate_json(orjson.dumps(whole)) == application
            assert set(orjson.loads(parts.features)) == set(model.current.feature_names)  # none protected

    def test_the_decision_value_is_the_same_with_or_without_records(self) -> None:
        _, _, _, sealed = _decide(KeyRing.parse(generate_keys("k1"), None))
        _, _, _, plain = _decide(None)
        assert not [name for r in plain for name, _ in r.headers or [] if name == HEADER]
        strip = {"decided_at", "latency_ms"}
        assert [{k: v for k, v in orjson.loads(r.value or b"").items() if k not in strip} for r in sealed] == [
            {k: v for k, v in orjson.loads(r.value or b"").items() if k not in strip} for r in plain]

    def test_two_applications_with_one_id_in_a_batch_each_carry_their_own_inputs(self) -> None:
        keys = KeyRing.parse(generate_keys("k1"), None)
        first = orjson.loads(next(iter(ApplicationFactory(seed=7).mixed(1, 0))).value)
        second = {**first, "loan": {**first["loan"], "amount": first["loan"]["amount"] + 1_000}}
        _, _, _, records = _decide(keys, [orjson.dumps(first), orjson.dumps(second)])
        amounts = []
        for record in records:
            decision = orjson.loads(record.value or b"")
            [envelope] = [value for name, value in record.headers or [] if name == HEADER]
            assert isinstance(envelope, bytes)
            parts = split(keys.open(envelope, RECORD, uuid.UUID(decision["decision_id"]).bytes))
            amounts.append(orjson.loads(parts.application)["loan"]["amount"])
        assert amounts == [first["loan"]["amount"], second["loan"]["amount"]]
