"""The README's configuration table, generated from the Settings model (a test keeps them equal)."""

from __future__ import annotations

from pydantic import SecretStr

from streamer.config import Settings


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(secret)" if isinstance(default, SecretStr) else ("" if default is None else str(default))
        rows.append(f"| `STREAMER_{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
