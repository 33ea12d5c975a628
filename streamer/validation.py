"""Raw Kafka value -> LoanApplication, or a rejection with a reason a producer can act on."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas.application import LoanApplication

MAX_ERRORS_REPORTED = 5


@dataclass(frozen=True)
class Rejection:
    """Why an event cannot be scored. `reason` is a small fixed vocabulary (metrics label, DLQ header)."""

    reason: str
    detail: str


def parse_application(value: bytes | None, max_bytes: int) -> LoanApplication | Rejection:
    if not value:
        return Rejection("empty_value", "the record has no value")
    if len(value) > max_bytes:
        return Rejection("too_large", f"value is {len(value)} bytes; the limit is {max_bytes}")
    try:
        return LoanApplication.model_validate_json(value)
    except ValidationError as exc:
        return _rejection(exc)


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
