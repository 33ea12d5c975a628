"""The worker's fast path (the msgspec mirror in schemas/application_fast.py, behind
streamer.core.validation.fast_application) may only be stricter than the pydantic contract: whatever it
accepts, LoanApplication accepts with the same values. If it ever accepted more, an event pydantic
refuses would be scored instead of dead-lettered."""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from types import UnionType
from typing import Any, Literal, get_args, get_origin

import msgspec
import pytest
from pydantic import BaseModel, ValidationError

from schemas.application import Applicant, Loan, LoanApplication
from schemas.application_fast import FastApplicant, FastApplication, FastLoan
from streamer.core.validation import fast_application
from streamer.local.synthetic import ApplicationFactory
from tests.faults.poison import hand_picked, mutated, schema_documents

PAIRS: list[tuple[type[BaseModel], type[msgspec.Struct]]] = [
    (LoanApplication, FastApplication), (Loan, FastLoan), (Applicant, FastApplicant),
]
BOUNDS = ("gt", "ge", "lt", "le")


def _plain(value: Any) -> Any:
    """Both decoders' results as builtins, enums as their values, so they compare field by field."""
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {k: _plain(getattr(value, k)) for k in value.__struct_fields__}
    if isinstance(value, Enum):
        return ("enum", type(value).__name__, value.value)
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    return (type(value).__name__, value)


def assert_no_wider_than_pydantic(value: bytes) -> bool:
    """True if the mirror accepted the payload (and pydantic agreed, with equal values)."""
    fast = fast_application(value)
    if fast is None:
        return False
    try:
        model = LoanApplication.model_validate_json(value)
    except ValidationError as exc:
        pytest.fail(f"the mirror accepted what pydantic refuses: {value[:200]!r}: {exc}")
    assert _plain(fast) == _plain(model), value[:200]
    return True


class TestSameFields:
    @pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda t: t.__name__)
    def test_the_mirror_declares_the_same_fields_in_the_same_order(
        self, model: type[BaseModel], struct: type[msgspec.Struct]
    ) -> None:
        assert struct.__struct_fields__ == tuple(model.model_fields)

    @pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda t: t.__name__)
    def test_enums_literals_and_numeric_bounds_match(
        self, model: type[BaseModel], struct: type[msgspec.Struct]
    ) -> None:
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        for fast_field in info.fields:
            field = model.model_fields[fast_field.name]
            fast_type = fast_field.type
            annotation = field.annotation
            assert not isinstance(annotation, UnionType), "optional fields would need a mirror rule"
            if isinstance(fast_type, msgspec.inspect.EnumType):
                assert fast_type.cls is annotation, fast_field.name
            elif isinstance(fast_type, msgspec.inspect.LiteralType):
                assert get_origin(annotation) is Literal and tuple(fast_type.values) == get_args(annotation)
            elif isinstance(fast_type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
                declared = {b: getattr(m, b) for m in field.metadata for b in BOUNDS if getattr(m, b, None) is not None}
                mirrored = {b: getattr(fast_type, b) for b in BOUNDS if getattr(fast_type, b) is not None}
                assert declared == mirrored, fast_field.name
                assert annotation is (int if isinstance(fast_type, msgspec.inspect.IntType) else float)


class TestNeverWiderThanPydantic:
    def test_valid_synthetic_applications_pass_both_with_equal_values(self) -> None:
        factory = ApplicationFactory(seed=11)
        for _ in range(500):
            assert assert_no_wider_than_pydantic(json.dumps(factory.valid()).encode())

    def test_the_hand_picked_poison_payloads(self) -> None:
        accepted = 0
        for payload, _ in hand_picked("fast"):
            if payload.value is not None:
                accepted += assert_no_wider_than_pydantic(payload.value)
        assert accepted >= 2  # the valid ones among them (duplicate key, extra fields) still take the fast path

    def test_schema_documents_mutated_thousands_of_ways(self) -> None:
        payloads = mutated(schema_documents(40), 4_000, "fast", seed=17)
        accepted = sum(assert_no_wider_than_pydantic(p.value) for p in payloads if p.value is not None)
        assert accepted > 100  # the mutator leaves many valid, so the comparison of values is exercised

    @pytest.mark.parametrize("extra", [b'"a\xffb"', b'"\\ud800"', b'"caf\xc3\xa9"'])
    def test_unknown_fields_pydantic_would_check_are_left_to_pydantic(self, extra: bytes) -> None:
        # Invalid UTF-8 or a lone surrogate inside an unknown field: msgspec skips it unchecked.
        value = json.dumps(ApplicationFactory(seed=2).valid()).encode()[:-1] + b', "note": ' + extra + b"}"
        assert fast_application(value) is None

    @pytest.mark.parametrize("identifier", ["app-1\n", "app 1", "a@b.example", "-app", "x" * 65, "é", ""])
    def test_identifiers_pydantic_refuses(self, identifier: str) -> None:
        document = ApplicationFactory(seed=2).valid() | {"application_id": identifier}
        assert not assert_no_wider_than_pydantic(json.dumps(document).encode())

    @pytest.mark.parametrize("stamp", [
        "2026-11-22T10:00:00Z", "2026-11-22T10:00:00z", "2026-11-22T10:00:00+01:00", "2026-11-22T10:00:00.1+05:30",
        "2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00.1234567-00:00", "2026-11-22 10:00:00Z",
        "2026-11-22t10:00:00Z", "2026-11-22T10:00Z", "2026-11-22T10:00:00", "2026-11-22", "2026-11-22T23:59:60Z",
        "2026-11-22T24:00:00Z", "2026-11-22T10:00:00+0100", "2026-11-22T10:00:00+01", "20261122T100000Z",
        "2026-W47-7T10:00:00Z", "2026-11-22T10:00:00,5Z", "1712000000", "+2026-11-22T10:00:00Z",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999+14:00", "2026-02-29T10:00:00Z",
    ])
    def test_timestamps(self, stamp: str) -> None:
        document = ApplicationFactory(seed=2).valid() | {"submitted_at": stamp}
        assert_no_wider_than_pydantic(json.dumps(document).encode())

    @pytest.mark.parametrize(("field", "value"), [
        ("amount", 1), ("amount", 1e-300), ("amount", 10_000_000), ("amount", 10_000_000.000001), ("amount", True),
        ("term_months", 12.0), ("term_months", 480), ("term_months", 481), ("term_months", False),
        ("currency", "eur"), ("purpose", "NEW_CAR"), ("amount", 2**64), ("term_months", 2**64),
    ])
    def test_loan_edge_values(self, field: str, value: object) -> None:
        document = ApplicationFactory(seed=2).valid()
        document["loan"][field] = value
        assert_no_wider_than_pydantic(json.dumps(document).encode())

    @pytest.mark.parametrize("value", [1, 0, "true", None, 1.0])
    def test_flags_take_only_json_booleans(self, value: object) -> None:
        document = ApplicationFactory(seed=2).valid()
        document["applicant"]["has_telephone"] = value
        assert not assert_no_wider_than_pydantic(json.dumps(document).encode())
