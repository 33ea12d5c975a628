"""The event contracts: strict validation, committed JSON Schemas, deterministic decision ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas import FEATURE_FIELDS, FEATURES_BY_NAME, Decision, LoanApplication, decision_id_for, flatten
from schemas.jsonschema import JSON_DIR, SCHEMA_FILES, render
from streamer.local.synthetic import ApplicationFactory


def _valid() -> dict[str, Any]:
    return ApplicationFactory(seed=1).valid()


class TestCommittedJsonSchemas:
    @pytest.mark.parametrize("filename", sorted(SCHEMA_FILES))
    def test_committed_file_equals_what_the_model_generates(self, filename: str) -> None:
        committed = (JSON_DIR / filename).read_text(encoding="utf-8")
        assert committed == render(SCHEMA_FILES[filename]), f"run `make schemas` and commit {filename}"

    def test_application_schema_lists_every_required_top_level_field(self) -> None:
        schema = json.loads((JSON_DIR / "loan-application.v1.json").read_text())
        assert set(schema["required"]) == {
            "schema_version", "application_id", "applicant_id", "submitted_at", "loan", "applicant"
        }


class TestLoanApplicationValidation:
    def test_a_well_formed_application_is_accepted(self) -> None:
        application = LoanApplication.model_validate_json(json.dumps(_valid()))
        assert application.loan.currency == "EUR"

    @pytest.mark.parametrize(
        ("path", "value"),
        [
            (("loan", "amount"), "1200.00"),  # number as a string
            (("loan", "amount"), -5.0),
            (("loan", "amount"), 0),
            (("loan", "term_months"), 12.5),
            (("loan", "currency"), "USD"),
            (("applicant", "housing"), "castle"),
            (("applicant", "has_telephone"), 1),  # no int-to-bool coercion
            (("applicant", "age_years"), 17),
            (("applicant_id",), "jane.doe@example.com"),  # ids are pseudonymous, never an email
            (("applicant_id",), "Jane Doe"),
            (("submitted_at",), "2026-11-22T10:00:00"),  # no offset: not RFC 3339
            (("schema_version",), 2),
        ],
    )
    def test_a_wrong_value_is_rejected(self, path: tuple[str, ...], value: object) -> None:
        doc = _valid()
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(ValidationError):
            LoanApplication.model_validate_json(json.dumps(doc))

    @pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
    def test_non_finite_amounts_are_rejected(self, literal: bytes) -> None:
        raw = json.dumps(_valid()).encode()
        doc = json.loads(raw)
        raw = raw.replace(json.dumps(doc["loan"]["amount"]).encode(), literal, 1)
        with pytest.raises(ValidationError, match="finite"):
            LoanApplication.model_validate_json(raw)

    def test_a_missing_required_field_is_rejected(self) -> None:
        doc = _valid()
        del doc["applicant"]["savings"]
        with pytest.raises(ValidationError, match="savings"):
            LoanApplication.model_validate_json(json.dumps(doc))

    def test_unknown_extra_fields_are_dropped_not_kept(self) -> None:
        doc = _valid()
        doc["applicant"]["full_name"] = "Jane Doe"
        doc["channel"] = "web"
        application = LoanApplication.model_validate_json(json.dumps(doc))
        dumped = application.model_dump_json()
        assert "Jane Doe" not in dumped
        assert "channel" not in dumped


# Decision ids pinned as released: consumers dedupe on decision_id across releases, so these strings must
# never change. A failure here means the uuid5 namespace, the separator or the encoding of the name moved,
# and every redelivered decision would look new downstream; fix the code, never these values.
PINNED_DECISION_IDS = [
    (("app-1", "m", "1"), "27db5fee-2a0e-5bde-bec5-7d69146118db"),
    (("APP-2026-000123", "credit-pd", "2026.11.1"), "0cc21fed-b808-57ed-add3-22e2b8746b6f"),
]


class TestDecisionId:
    @pytest.mark.parametrize(("parts", "expected"), PINNED_DECISION_IDS)
    def test_an_application_and_model_give_the_id_released_for_them(
        self, parts: tuple[str, str, str], expected: str
    ) -> None:
        assert decision_id_for(*parts) == expected

    def test_a_new_model_version_gives_a_new_id(self) -> None:
        assert decision_id_for("app-1", "m", "1") != decision_id_for("app-1", "m", "2")

    def test_ids_cannot_collide_by_shifting_text_between_parts(self) -> None:
        assert decision_id_for("app-1", "m1", "2") != decision_id_for("app-1m", "1", "2")

    def test_a_decision_rejects_more_than_four_reason_codes(self) -> None:
        reason = {"code": "SAVINGS", "feature": "savings", "description": "Insufficient savings"}
        doc = {
            "schema_version": 1, "decision_id": decision_id_for("a", "m", "1"), "application_id": "a",
            "outcome": "decline", "probability_of_default": 0.9,
            "model": {"name": "m", "version": "1", "sha256": "0" * 64}, "policy_version": "p1",
            "reason_codes": [reason] * 5, "decided_at": "2026-11-22T10:00:00Z", "latency_ms": 3.0,
        }
        with pytest.raises(ValidationError, match="at most 4"):
            Decision.model_validate_json(json.dumps(doc))
        doc["reason_codes"] = [reason] * 4
        assert len(Decision.model_validate_json(json.dumps(doc)).reason_codes) == 4


class TestFeatureFields:
    def test_each_feature_names_a_field_of_its_section_of_the_application(self) -> None:
        for feature in FEATURE_FIELDS:
            section = LoanApplication.model_fields[feature.section].annotation
            assert isinstance(section, type) and issubclass(section, BaseModel)
            assert feature.attribute in section.model_fields, feature

    def test_a_feature_reads_its_value_from_its_section_and_attribute_whatever_its_note_says(self) -> None:
        application = LoanApplication.model_validate_json(json.dumps(ApplicationFactory(seed=11).valid()))
        assert flatten(application)["has_telephone"] == float(application.applicant.has_telephone)
        assert flatten(application)["loan_amount"] == application.loan.amount
        assert FEATURES_BY_NAME["has_telephone"].description == "applicant.has_telephone (1 = yes)"
