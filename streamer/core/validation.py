"""Raw Kafka value -> an application, or a rejection with a reason a producer can act on.

Most events take the fast path: the msgspec mirror of the schema (schemas/application_fast.py), 2-3 times
cheaper than pydantic. Whatever the mirror refuses, and the few payloads on which the two are known to
differ, go to pydantic, the contract, which accepts them or says why not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from schemas.application import LoanApplication
from schemas.application_fast import FAST_DECODER, Application, FastApplication

MAX_ERRORS_REPORTED = 5
NON_JSON_LITERAL = "a bare NaN, Infinity or -Infinity literal outside the schema's fields is not JSON (RFC 8259)"


@dataclass(frozen=True)
class Rejection:
    """Why an event cannot be scored. `reason` is a small fixed vocabulary (metrics label, DLQ header)."""

    reason: str
    detail: str


def parse_application(value: bytes | None, max_bytes: int) -> Application | Rejection:
    if not value:
        return Rejection("empty_value", "the record has no value")
    if len(value) > max_bytes:
        return Rejection("too_large", f"value is {len(value)} bytes; the limit is {max_bytes}")
    fast = fast_application(value)
    if fast is not None:
        return fast
    try:
        application = LoanApplication.model_validate_json(value)
    except ValidationError as exc:
        return _rejection(exc)
    return _non_json_literal(value) or application


def fast_application(value: bytes) -> FastApplication | None:
    """The mirror's reading of the payload, or None: pydantic must decide."""
    if not _mirror_agrees(value):
        return None
    try:
        return FAST_DECODER.decode(value)
    except Exception:  # msgspec's errors, and e.g. UnicodeDecodeError for invalid UTF-8 in an enum value
        return None


def _mirror_agrees(value: bytes) -> bool:
    """False for what the mirror would read differently (tests/unit/test_application_fast.py found them):
    - non-ASCII bytes: pydantic refuses invalid UTF-8 anywhere, the mirror not inside unknown fields
      (every field of the schema is ASCII, so a valid event pays only for non-ASCII extras);
    - a fraction of 7+ digits: the mirror rounds a sub-microsecond timestamp, pydantic truncates it."""
    if not value.isascii():
        return False
    dot = value.find(b".")
    while dot != -1:
        if value[dot + 1 : dot + 8].isdigit():
            return False
        dot = value.find(b".", dot + 1)
    return True


class _NonFiniteLiteral(ValueError):
    pass


def _refuse(literal: str) -> float:
    raise _NonFiniteLiteral(literal)


def _non_json_literal(value: bytes) -> Rejection | None:
    """pydantic reads bare NaN, Infinity and -Infinity, and drops the unknown fields that hold them; a document
    with them is still not JSON. (The mirror refuses them anywhere, so only pydantic's acceptances get here.)"""
    if b"NaN" not in value and b"Infinity" not in value:
        return None  # the common case: no need for a second parse
    try:
        json.loads(value, parse_constant=_refuse)
    except _NonFiniteLiteral:
        return Rejection("invalid_json", NON_JSON_LITERAL)
    except (ValueError, RecursionError):
        return None  # pydantic read it; nothing else here is for this check to judge
    return None


def _rejection(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    kinds = {e["type"] for e in errors}
    # Messages never echo input values: they could carry personal data.
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:MAX_ERRORS_REPORTED]
    )
    if len(errors) > MAX_ERRORS_REPORTED:
        detail += f"; and {len(errors) - MAX_ERRORS_REPORTED} more"
    if kinds & {"json_invalid", "json_type"}:
        return Rejection("invalid_json", detail)
    if any(e["loc"] == ("schema_version",) and e["type"] != "missing" for e in errors):
        return Rejection("unsupported_schema_version", detail)
    return Rejection("schema_violation", detail)
