"""Write k8s/base/app/prometheusrule.yaml from deploy/prometheus/alerts.yml and alerts-kubernetes.yml (the one
place alerts are edited). Only alerts.yml is in docker-compose.yml's Prometheus.

Usage: python deploy/sync_prometheusrule.py   (tests/deploy fails while the two differ)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "deploy" / "prometheus" / "alerts.yml", ROOT / "deploy" / "prometheus" / "alerts-kubernetes.yml")
TARGET = ROOT / "k8s" / "base" / "app" / "prometheusrule.yaml"
HEADER = (
    "# Alerts for streamer (Prometheus Operator). Generated from deploy/prometheus/alerts.yml and\n"
    "# alerts-kubernetes.yml, where each alert is explained: edit those and run\n"
    "# `python deploy/sync_prometheusrule.py`. The release label is the one kube-prometheus-stack's default\n"
    "# ruleSelector matches (its Helm release name); deploy/README.md says how an overlay changes it.\n"
)
# kube-prometheus-stack's Prometheus loads only the PrometheusRules labelled with its Helm release name.
RELEASE_LABEL = {"release": "kube-prometheus-stack"}


class _BlockStrings(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints
    """Multi-line strings (PromQL) as literal blocks, so the generated file reads like the source."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BlockStrings.add_representer(str, _str)


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "streamer", "labels": dict(RELEASE_LABEL)},
        "spec": {"groups": groups},
    }


def render() -> str:
    groups = [group for source in SOURCES for group in yaml.safe_load(source.read_text(encoding="utf-8"))["groups"]]
    return HEADER + str(yaml.dump(prometheus_rule(groups), Dumper=_BlockStrings, sort_keys=False, width=120))


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
