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


def _with_unknown(literal: str, where: str, non_ascii: bool) -> bytes:
    """A valid application plus an unknown field holding a bare `literal` (not JSON) at `where`."""
    document = ApplicationFactory(seed=5).valid()
    if non_ascii:  # pydantic alone reads non-ASCII payloads; pure ASCII ones are tried by the mirror first
        document["remark"] = "caf\u00e9"
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    placed = {
        "top": text[:-1] + f',"note":{literal}}}',
        "nested": text[:-1] + f',"extra":{{"a":{{"b":[1,{literal}]}}}}}}',
        "inside_applicant": text.replace('"applicant":{', f'"applicant":{{"note":{literal},', 1),
    }[where]
    return placed.encode()


class TestNonJsonLiteralsInUnknownFields:
    """Dropping unknown fields must not make a document that is not JSON (RFC 8259) valid."""

    @pytest.mark.parametrize("non_ascii", [False, True], ids=["mirror_first", "pydantic_only"])
    @pytest.mark.parametrize("where", ["top", "nested", "inside_applicant"])
    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_a_bare_non_finite_literal_anywhere_is_invalid_json(
        self, literal: str, where: str, non_ascii: bool
    ) -> None:
        result = parse_application(_with_unknown(literal, where, non_ascii), 65536)
        assert isinstance(result, Rejection), f"accepted a document with a bare {literal}"
        assert result.reason == "invalid_json"
        assert "RFC 8259" in result.detail

    @pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
    def test_the_same_words_inside_strings_are_fine(self, text: str) -> None:
        document = ApplicationFactory(seed=5).valid() | {"note": text, "caf\u00e9": f"{text} {text}"}
        parsed = parse_application(json.dumps(document, ensure_ascii=False).encode(), 65536)
        assert isinstance(parsed, LoanApplication)
