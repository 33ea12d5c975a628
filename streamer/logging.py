"""structlog setup: JSON lines in production, console on a TTY, and PII and secrets kept out of every record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote

import structlog

# Keys whose values are personal data whatever a producer or a developer put there.
PII_KEYS = frozenset(
    {"name", "first_name", "last_name", "full_name", "email", "phone", "phone_number", "telephone_number",
     "national_id", "ssn", "tax_id", "passport", "address", "iban", "date_of_birth"}
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# The password in `scheme://user:password@host`, and in a libpq `password=...` key/value string.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:@/\s'\"]*:)[^@\s'\"]+@")
_KEYVALUE_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)
MASK = "[redacted]"


class Redactor:
    """A structlog processor: drops PII-named keys (at any depth), masks email addresses, URL and key/value
    passwords, and every configured secret wherever it appears in a string value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        scrubbed: MutableMapping[str, Any] = self._scrub(event_dict)
        return scrubbed

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, MutableMapping):
            for key in list(value):
                if str(key).lower() in PII_KEYS:
                    value[key] = MASK
                else:
                    value[key] = self._scrub(value[key])
            return value
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        if isinstance(value, str):
            return self._text(value)
        return value

    def _text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if "@" in text:
            text = _EMAIL.sub(MASK, _URL_PASSWORD.sub(rf"\1{MASK}@", text))
        if "=" in text:
            text = _KEYVALUE_PASSWORD.sub(rf"\1{MASK}", text)
        return text


def url_secrets(url: str) -> list[str]:
    """The password in a database URL or key/value string, as written and percent-decoded, found without
    parsing it: a URL that does not parse is exactly the one libpq quotes back in its error."""
    found = re.findall(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:(.*)@", url)
    found += [v.strip("'") for _, v in _KEYVALUE_PASSWORD.findall(url)]
    return [s for password in found for s in {password, unquote(password)} if s]


def configure(log_format: str = "auto", level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route structlog and stdlib logging (Faust, librdkafka callbacks) through one renderer; `secrets`
    are masked wherever they appear."""
    stdout = sys.__stdout__
    use_console = log_format == "console" or (log_format == "auto" and stdout is not None and stdout.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Exceptions become text (`exception`) before masking: an exception object would only be turned
        # into text by the renderer, after the Redactor, with whatever personal data its message carries.
        structlog.processors.format_exc_info,
        Redactor(secrets),
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
