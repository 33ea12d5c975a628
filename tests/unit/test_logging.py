"""Structured logs never carry personal data: every record is rendered through `configure()`'s real
processor chain and checked as it reaches stdout."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import structlog

from streamer.audit.sink import AuditSink, AuditUnavailable, DecisionEvent
from streamer.config import Settings
from streamer.core.records import generate_keys
from streamer.logging import MASK, configure, get_logger

JANE = {"full_name": "Jane Doe", "email": "jane.doe@example.com", "phone": "+49 170 1234567"}


def _rendered(
    capfd: pytest.CaptureFixture[str], log_format: str, emit: Callable[[], None], secrets: Sequence[str] = ()
) -> str:
    """What the logging set up by `configure(log_format)` writes to stdout while `emit` logs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capfd.readouterr()
    configure(log_format, "INFO", secrets)
    try:
        emit()
    finally:
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)
    return capfd.readouterr().out


def _records(capfd: pytest.CaptureFixture[str], emit: Callable[[], None]) -> list[dict[str, Any]]:
    out = _rendered(capfd, "json", emit)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _log_personal_data() -> None:
    log = get_logger("test")
    log.info("application_refused", records=3, phone=JANE["phone"],
             applicant={"full_name": JANE["full_name"], "age_years": 40, "contacts": [{"email": JANE["email"]}]})
    log.info(f"rejected {JANE['email']}'s application", note=f"copy to {JANE['email']}")
    logging.getLogger("faust").warning("from the stdlib, about %s", JANE["email"])


class TestConfiguredLogging:
    def test_records_are_json_lines_that_keep_their_other_fields(self, capfd: pytest.CaptureFixture[str]) -> None:
        def emit() -> None:
            get_logger("test").info("batch_scored", records=3, outcome="approve")
            logging.getLogger("faust").warning("rebalance %s", "done")

        scored, stdlib = _records(capfd, emit)
        assert (scored["event"], scored["records"], scored["outcome"], scored["level"]) == (
            "batch_scored", 3, "approve", "info")
        assert (stdlib["event"], stdlib["logger"], stdlib["level"]) == ("rebalance done", "faust", "warning")

    def test_pii_keys_are_masked_at_any_depth(self, capfd: pytest.CaptureFixture[str]) -> None:
        refused = _records(capfd, _log_personal_data)[0]
        assert refused["records"] == 3
        assert refused["phone"] == MASK
        assert refused["applicant"] == {"full_name": MASK, "age_years": 40, "contacts": [{"email": MASK}]}

    def test_email_addresses_inside_messages_and_values_are_masked(self, capfd: pytest.CaptureFixture[str]) -> None:
        rejected = _records(capfd, _log_personal_data)[1]
        assert rejected["event"] == f"rejected {MASK}'s application"
        assert rejected["note"] == f"copy to {MASK}"

    def test_stdlib_records_such_as_faust_ones_are_masked_too(self, capfd: pytest.CaptureFixture[str]) -> None:
        stdlib = _records(capfd, _log_personal_data)[2]
        assert (stdlib["logger"], stdlib["event"]) == ("faust", f"from the stdlib, about {MASK}")

    @pytest.mark.parametrize("log_format", ["json", "console"])
    def test_no_personal_data_reaches_stdout_in_either_format(
        self, capfd: pytest.CaptureFixture[str], log_format: str
    ) -> None:
        out = _rendered(capfd, log_format, _log_personal_data)
        assert out.count(MASK) >= 6, out
        assert [value for value in JANE.values() if value in out] == [], out


class TestExceptions:
    """A logged exception keeps its traceback, as text, and personal data in its message is masked."""

    @staticmethod
    def _log_failures() -> None:
        try:
            raise ValueError(f"bad applicant {JANE['email']}")
        except ValueError:
            get_logger("test").exception("batch_failed")
            logging.getLogger("faust").exception("agent crashed")

    def test_an_exception_is_logged_with_its_traceback_and_without_personal_data(
        self, capfd: pytest.CaptureFixture[str]
    ) -> None:
        records = _records(capfd, self._log_failures)
        assert [r["event"] for r in records] == ["batch_failed", "agent crashed"]
        for record in records:
            text = json.dumps(record)
            assert JANE["email"] not in text, record
            assert "Traceback (most recent call last)" in record["exception"], record
            assert "ValueError: bad applicant [redacted]" in record["exception"], record


class TestSecrets:
    """A database URL libpq cannot parse comes back in its error message, whole or as the bad token, and
    the audit logs that error on every retry: the password must never reach a log line."""

    PASSWORD = "Hunter2pw"

    @pytest.mark.parametrize("url", [
        f"postgresql://streamer:{PASSWORD}@[::1:5432/audit",  # libpq quotes the whole URI
        "postgresql://streamer:Hunter%2pw@127.0.0.1:5432/audit",  # libpq quotes the bad token: the password
    ])
    def test_a_malformed_database_url_never_logs_its_password(
        self, capfd: pytest.CaptureFixture[str], url: str
    ) -> None:
        password = "Hunter%2pw" if "%2pw" in url else self.PASSWORD

        def emit() -> None:
            try:
                AuditSink(url, connect_timeout_s=1).write([DecisionEvent("loan-decisions", 0, 0, b"{}")])
            except AuditUnavailable as exc:
                assert password in str(exc), "the premise: libpq echoed the password"
                get_logger("streamer.runtime.batch_loop").warning("batch_failed", error=repr(exc))
                get_logger("streamer.runtime.batch_loop").exception("batch_loop_crashed")

        out = _rendered(capfd, "json", emit, secrets=Settings(database_url=url).secret_values())
        assert '"batch_failed"' in out and '"batch_loop_crashed"' in out, out
        assert password not in out, out

    def test_a_record_key_or_the_whole_key_setting_never_reaches_a_log_line(
        self, capfd: pytest.CaptureFixture[str]
    ) -> None:
        first, second = generate_keys("k1"), generate_keys("k2")
        keys = f"{first},{second}"
        first, second = first.partition(":")[2], second.partition(":")[2]

        def emit() -> None:
            get_logger("test").warning("odd", setting=keys, detail=f"key {second} refused")

        out = _rendered(capfd, "json", emit, secrets=Settings(record_keys=keys).secret_values())
        assert '"odd"' in out and first not in out and second not in out, out

    def test_credentials_in_any_url_are_masked_and_the_rest_is_kept(self, capfd: pytest.CaptureFixture[str]) -> None:
        def emit() -> None:
            get_logger("test").warning("connect_failed", error="cannot reach postgresql://audit:s3cret-Pw@db:5432/x")
            get_logger("test").warning("connect_failed", error="bad dsn: host=db password=s3cret-Pw dbname=x")

        out = _rendered(capfd, "json", emit)
        assert "s3cret-Pw" not in out, out
        assert f"postgresql://audit:{MASK}@db:5432/x" in out, out
        assert f"host=db password={MASK} dbname=x" in out, out

    def test_a_url_without_a_password_is_logged_as_it_is(self, capfd: pytest.CaptureFixture[str]) -> None:
        def emit() -> None:
            get_logger("test").info("audit_database", url="postgresql://audit@db:5432/x")

        assert "postgresql://audit@db:5432/x" in _rendered(capfd, "json", emit)
