"""Raw bytes -> application or a rejection whose reason a producer can act on."""

from __future__ import annotations

import json

import pytest

from schemas import LoanApplication
from schemas.application_fast import FastApplication
from streamer.core.validation import Rejection, parse_application
from streamer.local.synthetic import INVALID_KINDS, ApplicationFactory


class TestParseApplication:
    @pytest.mark.parametrize("kind", sorted(INVALID_KINDS))
    def test_each_kind_of_invalid_payload_gets_its_reason(self, kind: str) -> None:
        payload = ApplicationFactory(seed=3).invalid(kind)
        result = parse_application(payload, 65536)
        assert isinstance(result, Rejection)
        assert result.reason == INVALID_KINDS[kind]
        assert result.detail

    def test_a_valid_payload_becomes_an_application_by_the_fast_path(self) -> None:
        payload = next(ApplicationFactory(seed=3).mixed(1, 0))
        parsed = parse_application(payload.value, 65536)
        assert isinstance(parsed, FastApplication)
        assert parsed.application_id == json.loads(payload.value)["application_id"]

    @pytest.mark.parametrize("edit", [
        {"submitted_at": "2026-11-22T10:00:00.1234567Z"},  # the mirror would round it; pydantic truncates
        {"note": "caf\u00e9"},  # non-ASCII: pydantic checks UTF-8 everywhere, the mirror not in unknown fields
    ])
    def test_a_valid_payload_the_mirror_defers_is_still_accepted_by_pydantic(self, edit: dict[str, str]) -> None:
        document = ApplicationFactory(seed=3).valid() | edit
        parsed = parse_application(json.dumps(document, ensure_ascii=False).encode(), 65536)
        assert isinstance(parsed, LoanApplication)
        assert parsed.application_id == document["application_id"]

    def test_an_oversized_value_is_rejected_before_parsing(self) -> None:
        result = parse_application(b"{" + b" " * 100 + b"}", 50)
        assert isinstance(result, Rejection) and result.reason == "too_large"

    def test_a_null_value_is_rejected(self) -> None:
        result = parse_application(None, 100)
        assert isinstance(result, Rejection) and result.reason == "empty_value"

    def test_rejection_details_never_echo_the_input(self) -> None:
        payload = ApplicationFactory(seed=3).valid()
        payload["applicant_id"] = "jane.doe@example.com"
        result = parse_application(json.dumps(payload).encode(), 65536)
        assert isinstance(result, Rejection)
        assert "jane.doe" not in result.detail
        assert "applicant_id" in result.detail
