"""The README's reference sections match the code they describe."""

from __future__ import annotations

from pathlib import Path

from streamer.settings_doc import metrics_table, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


class TestReadme:
    def test_configuration_table_is_the_one_generated_from_the_settings_model(self) -> None:
        text = README.read_text(encoding="utf-8")
        start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
        end = text.index("<!-- settings-table:end -->")
        assert text[start:end].strip() == settings_table(), "paste `python -m streamer.settings_doc` into README"

    def test_metrics_table_lists_every_registered_metric(self) -> None:
        text = README.read_text(encoding="utf-8")
        start = text.index("<!-- metrics-table:start -->") + len("<!-- metrics-table:start -->")
        end = text.index("<!-- metrics-table:end -->")
        assert text[start:end].strip() == metrics_table(), "paste `python -m streamer.settings_doc metrics` into README"
