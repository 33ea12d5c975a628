"""Decision records: sealed so only a key holder reads them, bound to their decision, readable after a key
rotation, and split so that the protected attributes are never stored in the clear."""

from __future__ import annotations

import base64
import os
import uuid

import orjson
import pytest

from schemas.application import LoanApplication
from schemas.application_fast import FAST_DECODER
from streamer.core.records import (
    PROTECTED,
    RECORD,
    KeyRing,
    KeyRingError,
    RecordEncoder,
    Unreadable,
    envelope_key_id,
    generate_keys,
    joined,
    split,
)
from streamer.model.onnx_scorer import SMOKE_APPLICATION

DECISION = uuid.uuid4().bytes
OTHER_DECISION = uuid.uuid4().bytes
FEATURES = ("loan_amount", "savings", "age_years", "has_telephone")


def _ring(*key_ids: str, current: str | None = None) -> KeyRing:
    return KeyRing.parse(",".join(generate_keys(k) for k in key_ids), current)


class TestKeyRing:
    def test_a_sealed_record_opens_to_the_same_bytes(self) -> None:
        ring = _ring("k1")
        envelope = ring.sealer(RECORD).seal(b'{"a":1}', DECISION)
        assert ring.open(envelope, RECORD, DECISION) == b'{"a":1}'
        assert b'{"a":1}' not in envelope

    def test_a_flipped_bit_anywhere_after_the_key_id_is_refused(self) -> None:
        ring = _ring("k1")
        envelope = ring.sealer(RECORD).seal(b"secret", DECISION)
        for at in range(4, len(envelope)):
            tampered = bytearray(envelope)
            tampered[at] ^= 1
            with pytest.raises(Unreadable):
                ring.open(bytes(tampered), RECORD, DECISION)

    def test_an_envelope_moved_to_another_decision_is_refused(self) -> None:
        ring = _ring("k1")
        envelope = ring.sealer(RECORD).seal(b"secret", DECISION)
        with pytest.raises(Unreadable, match="authentication"):
            ring.open(envelope, RECORD, OTHER_DECISION)

    def test_a_header_envelope_cannot_pass_as_a_row_envelope(self) -> None:
        ring = _ring("k1")
        envelope = ring.sealer(RECORD).seal(b"secret", DECISION)
        with pytest.raises(Unreadable):
            ring.open(envelope, PROTECTED, DECISION)

    def test_after_a_rotation_old_envelopes_open_with_the_old_key_and_new_ones_use_the_new(self) -> None:
        old_key, new_key = generate_keys("k1"), generate_keys("k2")
        before = KeyRing.parse(old_key, None)
        old_envelope = before.sealer(PROTECTED).seal(b"old", DECISION)
        after = KeyRing.parse(f"{old_key},{new_key}", "k2")
        new_envelope = after.sealer(PROTECTED).seal(b"new", DECISION)
        assert (envelope_key_id(old_envelope), envelope_key_id(new_envelope)) == ("k1", "k2")
        assert after.open(old_envelope, PROTECTED, DECISION) == b"old"
        assert after.open(new_envelope, PROTECTED, DECISION) == b"new"
        with pytest.raises(Unreadable, match="'k2', which is not in the key ring"):
            before.open(new_envelope, PROTECTED, DECISION)

    def test_the_same_plaintext_seals_differently_each_time(self) -> None:
        sealer = _ring("k1").sealer(RECORD)
        first, second = sealer.seal_many([b"same", b"same"], [DECISION, DECISION])
        assert first != second

    @pytest.mark.parametrize("garbage", [b"", b"\x01", b"\x02k1" + bytes(60), b"\x01\x02k1" + bytes(10)])
    def test_what_is_not_an_envelope_is_unreadable(self, garbage: bytes) -> None:
        with pytest.raises(Unreadable):
            _ring("k1").open(garbage, RECORD, DECISION)

    @pytest.mark.parametrize(
        ("keys", "current", "says"),
        [
            ("k1", None, "key id:base64"),
            ("k1:not base64!", None, "not base64"),
            (f"k1:{base64.b64encode(os.urandom(16)).decode()}", None, "32"),
            (f"{generate_keys('k1')},{generate_keys('k2')}", None, "STREAMER_RECORD_KEY_ID"),
            (generate_keys("k1"), "k9", "'k9' is not among"),
            (generate_keys("k 1"), None, "must match"),
        ],
    )
    def test_a_bad_key_setting_is_refused_without_quoting_the_key(self, keys: str, current: str | None,
                                                                   says: str) -> None:
        with pytest.raises(KeyRingError, match=says) as refused:
            KeyRing.parse(keys, current)
        for key in (part.partition(":")[2] for part in keys.split(",")):
            assert len(key) < 20 or key not in str(refused.value)


class TestRecords:
    def test_a_record_holds_the_application_and_the_models_inputs_with_the_protected_attributes_apart(self) -> None:
        parts = split(RecordEncoder(FEATURES).document(SMOKE_APPLICATION))
        assert parts.schema_version == 1
        clear = orjson.loads(parts.application)
        assert not {"personal_status", "age_years", "foreign_worker"} & set(clear["applicant"])
        assert clear["applicant"]["savings"] == "below_100"
        assert orjson.loads(parts.features) == {"loan_amount": 2500.0, "savings": "below_100", "has_telephone": False}
        assert orjson.loads(parts.protected) == {
            "applicant": {"personal_status": "male_single", "age_years": 35, "foreign_worker": True},
            "features": {"age_years": 35},
        }

    @pytest.mark.parametrize("submitted_at", ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.123456+01:00",
                                              "2026-01-01T01:00:00-05:30"])
    def test_both_decoders_give_the_same_record_bytes(self, submitted_at: str) -> None:
        payload = orjson.dumps({**SMOKE_APPLICATION.model_dump(mode="json"), "submitted_at": submitted_at})
        encoder = RecordEncoder(FEATURES)
        assert encoder.document(FAST_DECODER.decode(payload)) == encoder.document(
            LoanApplication.model_validate_json(payload))

    def test_joining_the_parts_gives_back_the_application_the_model_saw(self) -> None:
        parts = split(RecordEncoder(FEATURES).document(SMOKE_APPLICATION))
        application = joined(orjson.loads(parts.application), parts.protected)
        assert LoanApplication.model_validate_json(orjson.dumps(application)) == SMOKE_APPLICATION

    @pytest.mark.parametrize("document", [b"", b"\x01\x00", b"\x02" + bytes(11) + b"{}{}{}",
                                          b"\x01\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02{}{}"])
    def test_what_is_not_a_record_is_unreadable(self, document: bytes) -> None:
        with pytest.raises(Unreadable):
            split(document)
