"""structlog setup: JSON lines in production, console on a TTY, and PII kept out of every record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are personal data whatever a producer or a developer put there.
PII_KEYS = frozenset(
    {"name", "first_name", "last_name", "full_name", "email", "phone", "phone_number", "telephone_number",
     "national_id", "ssn", "tax_id", "passport", "address", "iban", "date_of_birth"}
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
MASK = "[redacted]"


def mask_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop PII-named keys (at any depth) and mask email addresses inside string values."""
    scrubbed: MutableMapping[str, Any] = _scrub(event_dict)
    return scrubbed


def _scrub(value: Any) -> Any:
    if isinstance(value, MutableMapping):
        for key in list(value):
            if str(key).lower() in PII_KEYS:
                value[key] = MASK
            else:
                value[key] = _scrub(value[key])
        return value
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, str) and "@" in value:
        return _EMAIL.sub(MASK, value)
    return value


def configure(log_format: str = "auto", level: str = "INFO") -> None:
    """Route structlog and stdlib logging (Faust, librdkafka callbacks) through one renderer."""
    stdout = sys.__stdout__
    use_console = log_format == "console" or (log_format == "auto" and stdout is not None and stdout.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Exceptions become text (`exception`) before masking: an exception object would only be turned
        # into text by the renderer, after mask_pii, with whatever personal data its message carries.
        structlog.processors.format_exc_info,
        mask_pii,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
    # sys.__stdout__: Faust redirects sys.stdout into logging, which would loop back here.
    handler = logging.StreamHandler(sys.__stdout__)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
