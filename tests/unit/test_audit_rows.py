"""Decision v1 records checked and encoded in Python before the audit COPYs them: a record that is not a
Decision v1 is refused with the field named, never quoted; a good one becomes binary COPY rows."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas import decision_id_for
from streamer.audit.rows import COLUMNS, EncodedRow, NotADecision, RowEncoder
from streamer.audit.sink import _INSERT_NEW
from streamer.core.records import PROTECTED, RECORD, KeyRing, RecordEncoder, generate_keys
from streamer.model.onnx_scorer import SMOKE_APPLICATION


def _columns(encoded: EncodedRow) -> dict[str, bytes]:
    """The row's fields by column name; NULL as b"" (every column of a decision without a record is set)."""
    return {name: field or b"" for name, field in zip(COLUMNS, _fields(encoded.row), strict=True)}


def _decision(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1, "decision_id": decision_id_for("app-1", "m", "1"), "application_id": "app-1",
        "outcome": "decline", "probability_of_default": 0.71,
        "model": {"name": "m", "version": "1", "sha256": "b" * 64}, "policy_version": "pd-thresholds-1",
        "reason_codes": [{"code": "SAVINGS", "feature": "savings", "description": "Low savings"}],
        "decided_at": "2026-11-22T12:00:00.5Z", "latency_ms": 12.5,
    }
    doc.update(overrides)
    return doc


def _fields(row: bytes) -> list[bytes | None]:
    """A binary COPY row split into its fields (None for NULL)."""
    (count,), at, fields = struct.unpack_from(">h", row), 2, []
    for _ in range(count):
        (length,) = struct.unpack_from(">i", row, at)
        fields.append(row[at + 4:at + 4 + length] if length >= 0 else None)
        at += 4 + max(length, 0)
    assert at == len(row)
    return fields


class TestRowEncoder:
    def test_a_decision_becomes_a_row_of_every_column_in_postgres_binary_format(self) -> None:
        encoded = RowEncoder().row(orjson.dumps(_decision()), "loan-decisions", 3, 40)
        fields = _columns(encoded)
        assert uuid.UUID(bytes=fields["decision_id"]) == uuid.UUID(decision_id_for("app-1", "m", "1"))
        assert fields["application_id"] == b"app-1" and fields["outcome"] == b"decline"
        assert struct.unpack(">d", fields["probability_of_default"]) == (0.71,)
        assert (fields["model_name"], fields["model_version"], fields["model_sha256"]) == (b"m", b"1", b"b" * 64)
        assert fields["reason_codes"][:1] == b"\x01"  # jsonb's version byte
        assert orjson.loads(fields["reason_codes"][1:]) == _decision()["reason_codes"]
        since_2000 = datetime(2026, 11, 22, 12, 0, 0, 500_000, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)
        assert struct.unpack(">q", fields["decided_at"]) == (since_2000 // _MICROSECOND,)
        assert struct.unpack(">d", fields["latency_ms"]) == (12.5,)
        assert fields["source_topic"] == b"loan-decisions"
        assert struct.unpack(">i", fields["source_partition"]) == (3,)
        assert struct.unpack(">q", fields["source_offset"]) == (40,)
        assert _fields(encoded.ledger) == [fields["decision_id"], fields["decided_at"]]
        assert _fields(encoded.row)[-5:] == [None] * 5  # no record came with it

    def test_a_time_with_another_offset_is_stored_as_the_same_instant(self) -> None:
        encoder = RowEncoder()
        utc = encoder.row(orjson.dumps(_decision(decided_at="2026-11-22T12:00:00Z")), "t", 0, 0)
        berlin = encoder.row(orjson.dumps(_decision(decided_at="2026-11-22T13:00:00+01:00")), "t", 0, 0)
        assert _fields(utc.row)[9] == _fields(berlin.row)[9]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"schema_version": 2}, "schema_version"),
            ({"schema_version": True}, "schema_version"),
            ({"schema_version": "1"}, "schema_version"),
            ({"decision_id": "not-a-uuid-at-all"}, "decision_id"),
            ({"decision_id": "6f1c2a3e-5b7d-4c8e-9a0f-2d4b6e8a1c3"}, "decision_id"),
            ({"decision_id": "6f1c2a3e-5b7d-4c8e-9a0f-2d4b6e8a1c3g"}, "decision_id"),
            ({"decision_id": "6f1c2a3e-5b7d-4c8e-9a0f-2d4b6e8a1 c3"}, "decision_id"),
            ({"decision_id": "6f1c2a3e-5b7d-4c8e-9a0f--d4b6e8a1c3f"}, "decision_id"),
            ({"decision_id": "6f1c2a3e05b7d-4c8e-9a0f-2d4b6e8a1c3f"}, "decision_id"),
            ({"decision_id": 42}, "decision_id"),
            ({"application_id": None}, "application_id"),
            ({"outcome": "maybe"}, "outcome"),
            ({"outcome": ["approve"]}, "outcome"),
            ({"probability_of_default": 1.5}, "probability_of_default"),
            ({"probability_of_default": -0.1}, "probability_of_default"),
            ({"probability_of_default": "0.5"}, "probability_of_default"),
            ({"probability_of_default": True}, "probability_of_default"),
            ({"model": "m"}, "model"),
            ({"model": {"name": "m", "version": "1", "sha256": "B" * 64}}, "model.sha256"),
            ({"model": {"name": "m", "version": "1", "sha256": "b" * 63}}, "model.sha256"),
            ({"model": {"name": "m", "version": ["1"], "sha256": "b" * 64}}, "model"),
            ({"model": {"name": 1, "version": "1", "sha256": "b" * 64}}, "model.name"),
            ({"policy_version": 3}, "policy_version"),
            ({"reason_codes": [{}] * 5}, "reason_codes"),
            ({"reason_codes": {}}, "reason_codes"),
            ({"decided_at": "yesterday"}, "decided_at"),
            ({"decided_at": ["2026-11-22T12:00:00Z"]}, "decided_at"),
            ({"decided_at": 1_700_000_000}, "decided_at"),
            ({"latency_ms": float("inf")}, "latency_ms"),
            ({"decided_at": "2026-11-22T12:00:00"}, "decided_at"),  # no offset: which instant?
            ({"latency_ms": -1.0}, "latency_ms"),
        ],
    )
    def test_a_field_that_breaks_decision_v1_is_named_and_not_quoted(
        self, overrides: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(NotADecision) as refused:
            RowEncoder().row(orjson.dumps(_decision(**overrides)), "t", 0, 0)
        assert str(refused.value) == f"field {field}"

    def test_a_lone_surrogate_which_no_utf8_text_can_hold_is_refused(self) -> None:
        value = orjson.dumps(_decision(application_id="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\\ud800")
        with pytest.raises(NotADecision):
            RowEncoder().row(value, "t", 0, 0)

    @pytest.mark.parametrize("missing", ["decision_id", "decided_at", "model", "latency_ms"])
    def test_a_missing_field_is_named(self, missing: str) -> None:
        doc = {k: v for k, v in _decision().items() if k != missing}
        with pytest.raises(NotADecision, match=f"^field {missing} missing$"):
            RowEncoder().row(orjson.dumps(doc), "t", 0, 0)

    @pytest.mark.parametrize(("value", "why"), [(b"{", "not JSON"), (b"\xff", "not JSON"), (b"[1]", "not an object"),
                                                (b'"text"', "not an object")])
    def test_what_is_not_a_json_object_is_refused(self, value: bytes, why: str) -> None:
        with pytest.raises(NotADecision, match=f"^{why}$"):
            RowEncoder().row(value, "t", 0, 0)

    def test_a_cached_model_still_checks_every_record(self) -> None:
        encoder = RowEncoder()
        encoder.row(orjson.dumps(_decision()), "t", 0, 0)
        with pytest.raises(NotADecision, match="outcome"):
            encoder.row(orjson.dumps(_decision(outcome="maybe")), "t", 0, 1)


_MICROSECOND = datetime(2000, 1, 1, 0, 0, 0, 1) - datetime(2000, 1, 1)
_KEYS = KeyRing.parse(generate_keys("k1"), None)
_INPUTS = ("loan_amount", "savings", "age_years", "foreign_worker")


def _sealed_record(decision_id: str, keys: KeyRing = _KEYS) -> bytes:
    """What the scorer puts in the decision's streamer-record header."""
    document = RecordEncoder(_INPUTS).document(SMOKE_APPLICATION)
    return keys.sealer(RECORD).seal(document, uuid.UUID(decision_id).bytes)


class TestDecisionRecords:
    def test_a_record_is_stored_in_the_clear_without_the_protected_attributes_which_are_sealed(self) -> None:
        decision = _decision()
        encoded = RowEncoder(_KEYS).row(orjson.dumps(decision), "t", 0, 0, _sealed_record(decision["decision_id"]))
        fields = _columns(encoded)
        assert struct.unpack(">h", fields["application_schema_version"]) == (1,)
        # json's binary form is the text itself (jsonb's would start with a version byte)
        application, features = orjson.loads(fields["application"]), orjson.loads(fields["features"])
        assert application["applicant"]["savings"] == "below_100"
        assert not {"personal_status", "age_years", "foreign_worker"} & set(application["applicant"])
        assert features == {"loan_amount": 2500.0, "savings": "below_100"}
        for clear in (b"male_single", b"personal_status", b"foreign_worker"):
            assert clear not in encoded.row
        assert fields["record_key_id"] == b"k1"
        protected = _KEYS.open(fields["protected_attributes"], PROTECTED, uuid.UUID(decision["decision_id"]).bytes)
        assert orjson.loads(protected) == {
            "applicant": {"personal_status": "male_single", "age_years": 35, "foreign_worker": True},
            "features": {"age_years": 35, "foreign_worker": True},
        }

    def test_a_record_that_fails_authentication_leaves_the_record_columns_null_and_is_counted(self) -> None:
        decision, encoder = _decision(), RowEncoder(_KEYS)
        other = _sealed_record(decision_id_for("app-2", "m", "1"))  # another decision's record
        tampered = bytearray(_sealed_record(decision["decision_id"]))
        tampered[-1] ^= 1
        stranger = _sealed_record(decision["decision_id"], KeyRing.parse(generate_keys("k9"), None))
        for record in (other, bytes(tampered), stranger, b"garbage"):
            encoded = encoder.row(orjson.dumps(decision), "t", 0, 0, record)
            assert _fields(encoded.row)[-5:] == [None] * 5
            assert _columns(encoded)["outcome"] == b"decline"  # the decision is audited all the same
        assert encoder.unreadable == 4

    def test_without_keys_a_record_is_ignored(self) -> None:
        decision, encoder = _decision(), RowEncoder()
        encoded = encoder.row(orjson.dumps(decision), "t", 0, 0, _sealed_record(decision["decision_id"]))
        assert _fields(encoded.row)[-5:] == [None] * 5
        assert encoder.unreadable == 0




def test_the_insert_of_new_rows_names_the_columns_the_rows_are_encoded_in() -> None:
    columns = ", ".join(COLUMNS)
    statement = " ".join(_INSERT_NEW.split())
    assert f"INSERT INTO decision_audit ({columns}) SELECT {columns} FROM decision_audit_incoming" in statement
