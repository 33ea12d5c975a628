"""The README's reference sections match the code they describe."""

from __future__ import annotations

from pathlib import Path

from streamer.settings_doc import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


class TestReadme:
    def test_configuration_table_is_the_one_generated_from_the_settings_model(self) -> None:
        text = README.read_text(encoding="utf-8")
        start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
        end = text.index("<!-- settings-table:end -->")
        assert text[start:end].strip() == settings_table(), "paste `python -m streamer.settings_doc` into README"
