"""Reference tables in the README, generated from the code (a test keeps them equal)."""

from __future__ import annotations

import argparse

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr

from streamer import metrics
from streamer.config import PROFILE_DEFAULTS, Settings

_KINDS: dict[type[MetricWrapperBase], str] = {Counter: "counter", Gauge: "gauge", Histogram: "histogram"}


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(secret)" if isinstance(default, SecretStr) else ("" if default is None else str(default))
        if name in PROFILE_DEFAULTS:  # a default per broker profile
            shown = "`, `".join(f"{profile}: {value}" for profile, value in PROFILE_DEFAULTS[name].items())
        rows.append(f"| `STREAMER_{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(rows)


def metrics_table() -> str:
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    collectors = [c for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)]
    for c in sorted(collectors, key=lambda c: c._name):
        name = c._name + ("_total" if isinstance(c, Counter) else "")
        labels = ", ".join(f"`{label}`" for label in c._labelnames)
        rows.append(f"| `{name}` | {_KINDS[type(c)]} | {labels} | {c._documentation} |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("table", choices=["settings", "metrics"], nargs="?", default="settings")
    print(settings_table() if parser.parse_args().table == "settings" else metrics_table())
