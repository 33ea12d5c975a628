"""Structured logs never carry personal data."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from streamer.logging import MASK, configure, get_logger, mask_pii


class TestMaskPii:
    def test_pii_keys_are_masked_at_any_depth(self) -> None:
        event = {"event": "x", "email": "a@b.co", "applicant": {"name": "Jane", "age_years": 40}}
        masked = mask_pii(None, "info", event)
        assert masked["email"] == MASK
        assert masked["applicant"] == {"name": MASK, "age_years": 40}

    def test_email_addresses_inside_messages_are_masked(self) -> None:
        masked = mask_pii(None, "info", {"event": "rejected jane.doe@example.com's application"})
        assert "jane.doe" not in masked["event"]


class TestConfiguredLogger:
    def test_records_are_json_lines_without_pii(self, capfd: pytest.CaptureFixture[str]) -> None:
        configure("json", "INFO")
        try:
            get_logger("test").info("batch_scored", records=3, phone="+49 170 1234567")
            logging.getLogger("faust").warning("from the stdlib, about bob@example.org")
        finally:
            structlog.reset_defaults()
        lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
        assert lines[0]["event"] == "batch_scored" and lines[0]["records"] == 3
        assert lines[0]["phone"] == MASK
        assert "bob@example.org" not in lines[1]["event"]
