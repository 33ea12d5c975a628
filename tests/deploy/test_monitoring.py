"""Alerts and the Grafana dashboard: every PromQL expression parses, every streamer_* metric it names is one
that streamer/metrics.py registers (with prometheus_client's suffixes), with labels the metric has, and
the Prometheus rule files and the PrometheusRule say the same; every alert has a runbook row, and every
exporter an alert reads has an absent() guard wherever that alert is loaded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from streamer import metrics
from tests.deploy.conftest import K8S, REPO, load_script, load_yaml_docs, yaml

promql = pytest.importorskip("promql_parser", reason="promql-parser is a dev dependency")

ALERTS_FILE = REPO / "deploy" / "prometheus" / "alerts.yml"
# Alerts on metrics only Kubernetes has (kube-state-metrics, cAdvisor): in the PrometheusRule, not in compose.
K8S_ALERTS_FILE = REPO / "deploy" / "prometheus" / "alerts-kubernetes.yml"
DEPLOY_README = REPO / "deploy" / "README.md"
RULE_FILE = K8S / "base" / "app" / "prometheusrule.yaml"
DASHBOARD_FILE = REPO / "deploy" / "grafana" / "dashboards" / "streamer.json"
# Labels Prometheus attaches to every scraped series (target labels), on top of the metric's own.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}


def exposed_series() -> dict[str, set[str]]:
    """Every series name streamer/metrics.py exposes, mapped to the labels it can carry."""
    series: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        labels = set(collector._labelnames)
        for family in collector.describe():
            for suffix in SUFFIXES[family.type]:
                series[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return series


SERIES = exposed_series()


@dataclass
class Reference:
    """A metric named in an expression, with the labels the expression matches or groups it by."""

    where: str
    metric: str
    labels: set[str] = field(default_factory=set)
    matchers: dict[str, str] = field(default_factory=dict)  # label -> value or regex, as written


def grafana_to_promql(expr: str) -> str:
    """Grafana's variables replaced by values the PromQL parser accepts."""
    return re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr).replace("${datasource}", "x")


def references(where: str, expr: str) -> list[Reference]:
    found: list[Reference] = []
    grouping: list[set[str]] = []

    def pre(node: Any) -> None:
        if isinstance(node, promql.AggregateExpr):  # `by` labels must exist on what it aggregates
            by = node.modifier is not None and node.modifier.type == promql.AggModifierType.By
            grouping.append(set(node.modifier.labels) if by else set())
        if isinstance(node, promql.VectorSelector):
            names = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            metric = node.name or (names[0] if names else "")
            labels = {m.name for m in node.matchers.matchers if m.name != "__name__"}
            matchers = {m.name: m.value for m in node.matchers.matchers if m.name != "__name__"}
            found.append(Reference(where, metric, labels | (grouping[-1] if grouping else set()), matchers))

    def post(node: Any) -> None:
        if isinstance(node, promql.AggregateExpr):
            grouping.pop()

    promql.walk(promql.parse(expr), pre_visit=pre, post_visit=post)
    return found


def alert_rules(groups: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for group in groups:
        yield from group["rules"]


def rules_in(path: Path) -> dict[str, dict[str, Any]]:
    """The alerts of a Prometheus rule file, by name."""
    return {r["alert"]: r for r in alert_rules(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])}


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every alert and every dashboard target."""
    for path in (ALERTS_FILE, K8S_ALERTS_FILE):
        for rule in rules_in(path).values():
            yield f"alert {rule['alert']}", rule["expr"]
    (prometheus_rule,) = load_yaml_docs(RULE_FILE)
    for rule in alert_rules(prometheus_rule["spec"]["groups"]):
        yield f"PrometheusRule {rule['alert']}", rule["expr"]
    for panel in json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", grafana_to_promql(target["expr"])


EXPRESSIONS = list(expressions())
STREAMER_REFERENCES = [
    r for where, expr in EXPRESSIONS for r in references(where, expr) if r.metric.startswith("streamer_")
]


# Exporters streamer does not ship (compose runs a Kafka exporter; on Kubernetes all three are the cluster's),
# by the prefix of their metrics. An alert reading one needs an absent() guard, or a missing exporter silences it.
EXPORTERS = {"kube_": "kube-state-metrics", "container_": "cAdvisor", "kafka_": "Kafka exporter"}


def exporter_of(metric: str) -> str | None:
    return next((name for prefix, name in EXPORTERS.items() if metric.startswith(prefix)), None)


def absent_of(expr: str) -> str | None:
    """The metric an `absent(metric{...})` guard watches, or None if the expression is not one."""
    node = promql.parse(expr)
    if isinstance(node, promql.Call) and node.func.name == "absent":
        (arg,) = node.args
        if isinstance(arg, promql.VectorSelector):
            return str(arg.name)
    return None


class TestExpressions:
    @pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
    def test_every_expression_parses(self, where: str, expr: str) -> None:
        assert promql.parse(expr) is not None

    @pytest.mark.parametrize("ref", STREAMER_REFERENCES, ids=[f"{r.where}:{r.metric}" for r in STREAMER_REFERENCES])
    def test_every_streamer_metric_named_is_registered_in_streamer_metrics(self, ref: Reference) -> None:
        assert ref.metric in SERIES, f"{ref.where}: {ref.metric} is not exposed by streamer/metrics.py"

    @pytest.mark.parametrize("ref", STREAMER_REFERENCES, ids=[f"{r.where}:{r.metric}" for r in STREAMER_REFERENCES])
    def test_every_label_used_on_a_streamer_metric_is_one_it_has(self, ref: Reference) -> None:
        unknown = ref.labels - SERIES.get(ref.metric, set()) - TARGET_LABELS
        assert not unknown, f"{ref.where}: {ref.metric} has no label {sorted(unknown)}"

    def test_the_checker_finds_suffixed_names_and_rejects_unknown_ones(self) -> None:
        refs = references("t", 'sum by (outcome) (rate(streamer_decisions_total[5m])) + streamer_nope{x="1"}')
        assert {r.metric for r in refs} == {"streamer_decisions_total", "streamer_nope"}
        assert "streamer_decisions_total" in SERIES and "streamer_nope" not in SERIES
        assert {"streamer_end_to_end_latency_seconds_bucket", "streamer_model_info"} <= set(SERIES)
        (misspelt,) = references("t", "sum by (outcom) (rate(streamer_decisions_total[5m]))")
        assert misspelt.labels - SERIES["streamer_decisions_total"] == {"outcom"}


class TestAlertRules:
    def test_the_prometheus_rule_is_generated_from_the_rule_file(self) -> None:
        sync = load_script("deploy/sync_prometheusrule.py")
        assert RULE_FILE.read_text(encoding="utf-8") == sync.render(), "run: python deploy/sync_prometheusrule.py"

    def test_the_prometheus_rule_holds_the_shared_and_the_kubernetes_only_groups(self) -> None:
        (prometheus_rule,) = load_yaml_docs(RULE_FILE)
        names = [g["name"] for g in prometheus_rule["spec"]["groups"]]
        wanted = [g["name"] for path in (ALERTS_FILE, K8S_ALERTS_FILE)
                  for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
        assert names == wanted and len(set(names)) == len(names)

    def test_the_prometheus_rule_carries_the_label_kube_prometheus_stack_selects_by_default(self) -> None:
        (prometheus_rule,) = load_yaml_docs(RULE_FILE)
        assert prometheus_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    def test_the_alerts_the_runbook_promises_exist(self) -> None:
        rules = rules_in(ALERTS_FILE) | rules_in(K8S_ALERTS_FILE)
        wanted = {
            "StreamerConsumerLagGrowing": "kafka_consumergroup_lag",
            "StreamerDeadLetterRateHigh": "streamer_dead_letters_total",
            "StreamerNoDecisions": "streamer_decisions_total",
            "StreamerModelLoadFailed": "streamer_model_load_failures_total",
            "StreamerAuditLagHigh": "streamer_audit_lag_events",
            "StreamerAuditDatabaseDown": "streamer_audit_database_up",  # Postgres is alerted on, not a readiness gate
            "StreamerDeadLettersCutDown": "streamer_dead_letters_reduced_total",  # dead letters the broker refused
            "StreamerAuditDefaultPartitionNotEmpty": "streamer_audit_default_partition_rows",  # monthless rows
            "StreamerMigrateJobFailed": "kube_job_status_failed",
            "StreamerAuditPartitionsJobFailed": "kube_job_status_failed",
            "StreamerAuditPartitionsNotSucceeded": "kube_cronjob_status_last_successful_time",
            "StreamerWorkerRestarting": "kube_pod_container_status_restarts_total",
            "StreamerWorkerCpuThrottled": "container_cpu_cfs_throttled_periods_total",
            "StreamerKubeStateMetricsAbsent": "kube_pod_info",
            "StreamerCadvisorMetricsAbsent": "container_cpu_cfs_periods_total",
            "StreamerKafkaExporterAbsent": "kafka_consumergroup_lag",
        }
        for alert, metric in wanted.items():
            assert metric in {r.metric for r in references(alert, rules[alert]["expr"])}, alert

    def test_every_alert_has_a_runbook_entry_in_the_deploy_readme(self) -> None:
        text = DEPLOY_README.read_text(encoding="utf-8")
        section = text[text.index("\n## Alerts\n"):]
        section = section[: section.index("\n## ", 1)]
        entries = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
        assert set(rules_in(ALERTS_FILE) | rules_in(K8S_ALERTS_FILE)) == entries

    def test_kubernetes_alerts_select_the_workloads_the_manifests_name(self) -> None:
        rules = rules_in(K8S_ALERTS_FILE)
        container = self.worker_container()
        job = self.manifest_name("migrate-job.yaml")
        cronjob = self.manifest_name("audit-partitions-cronjob.yaml")

        def matchers(alert: str, metric: str) -> dict[str, str]:
            ref = {r.metric: r for r in references(alert, rules[alert]["expr"])}[metric]
            assert ref.matchers["namespace"] == "streamer", alert
            return ref.matchers

        assert re.fullmatch(matchers("StreamerMigrateJobFailed", "kube_job_status_failed")["job_name"], job)
        partitions_job = f"{cronjob}-29000000"  # a CronJob's Job is named <cronjob>-<minutes since the epoch>
        assert re.fullmatch(matchers("StreamerAuditPartitionsJobFailed", "kube_job_status_failed")["job_name"],
                            partitions_job)
        assert not re.fullmatch(matchers("StreamerMigrateJobFailed", "kube_job_status_failed")["job_name"],
                                partitions_job)
        last_success = matchers("StreamerAuditPartitionsNotSucceeded", "kube_cronjob_status_last_successful_time")
        assert last_success["cronjob"] == cronjob
        restarts = matchers("StreamerWorkerRestarting", "kube_pod_container_status_restarts_total")
        assert restarts["container"] == container
        for metric in ("container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_periods_total"):
            assert matchers("StreamerWorkerCpuThrottled", metric)["container"] == container

    @staticmethod
    def manifest_name(file: str) -> str:
        (doc,) = load_yaml_docs(K8S / "base" / "app" / file)
        return str(doc["metadata"]["name"])

    @staticmethod
    def worker_container() -> str:
        (deployment,) = load_yaml_docs(K8S / "base" / "app" / "deployment.yaml")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return str(container["name"])

    @pytest.mark.parametrize(
        ("loaded_by", "files"),
        [("docker compose", (ALERTS_FILE,)), ("the PrometheusRule", (ALERTS_FILE, K8S_ALERTS_FILE))],
    )
    def test_every_exporter_an_alert_reads_has_an_absent_guard_loaded_with_it(
        self, loaded_by: str, files: tuple[Path, ...]
    ) -> None:
        rules = {name: rule for path in files for name, rule in rules_in(path).items()}
        guarded = {exporter_of(metric) for metric in map(absent_of, (r["expr"] for r in rules.values())) if metric}
        read = {exporter_of(r.metric) for name, rule in rules.items() if not absent_of(rule["expr"])
                for r in references(name, rule["expr"])}
        assert read - {None} <= guarded, loaded_by

    def test_the_guard_checker_knows_an_absent_guard_from_an_alert(self) -> None:
        assert absent_of('absent(kube_pod_info{namespace="streamer"})') == "kube_pod_info"
        assert absent_of('absent(up{job="streamer"} == 1)') is None  # StreamerDown guards no exporter
        assert absent_of("kube_job_status_failed > 0") is None
        assert [exporter_of(m) for m in ("kube_pod_info", "container_cpu_cfs_periods_total",
                                         "kafka_consumergroup_lag", "streamer_decisions_total", "up")] == [
            "kube-state-metrics", "cAdvisor", "Kafka exporter", None, None]

    def test_lag_alerts_watch_the_scoring_group_on_the_input_topic(self) -> None:
        refs = [r for where, expr in EXPRESSIONS if where.startswith("alert") for r in references(where, expr)
                if r.metric == "kafka_consumergroup_lag"]
        assert refs
        for where, expr in EXPRESSIONS:
            if "kafka_consumergroup_lag" in expr and where.startswith("alert"):
                assert 'consumergroup="streamer-scorer"' in expr and 'topic="loan-applications"' in expr, where


class TestDashboard:
    dashboard = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))

    def exprs(self) -> str:
        return "\n".join(t["expr"] for p in self.dashboard["panels"] for t in p.get("targets", []))

    @pytest.mark.parametrize(
        ("topic", "pattern"),
        [
            ("throughput", r"rate\(streamer_applications_consumed_total"),
            ("outcomes", r"sum by \(outcome\) \(rate\(streamer_decisions_total"),
            ("latency percentiles",
             r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(streamer_end_to_end_latency_seconds_bucket"),
            ("audit lag", r"streamer_audit_lag_events"),
            ("model version", r"by \(name, version, sha256\) \(streamer_model_info"),
            ("dead letters by reason", r"sum by \(reason\) \(rate\(streamer_dead_letters_total"),
            ("batch failures", r"streamer_batch_failures_total"),
        ],
    )
    def test_it_charts(self, topic: str, pattern: str) -> None:
        assert re.search(pattern, self.exprs()), topic

    def test_every_panel_uses_the_prometheus_datasource_variable(self) -> None:
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for panel in self.dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]

    def test_panel_ids_are_unique_and_the_uid_is_stable(self) -> None:
        ids = [p["id"] for p in self.dashboard["panels"]]
        assert len(ids) == len(set(ids)) and self.dashboard["uid"] == "streamer"
