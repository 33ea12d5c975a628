"""The kustomize overlays: they render, core kinds validate against a pinned Kubernetes version, the
custom resources carry what their operators need, the pods meet the restricted profile, and every
setting they pass is a real field of streamer.config.Settings."""

from __future__ import annotations

import copy
import json
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from streamer.config import Settings
from streamer.runtime.clients import transactional_id
from tests.deploy.conftest import K8S, REPO, Doc, Rendered, load_yaml_docs, render, settings_env_names
from tests.deploy.test_dockerfile import DOCKERFILE, stages

# The oldest Kubernetes minor the manifests promise to work on (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule", "KafkaTopic", "KafkaUser"}
WEB_PORT = 6066
# Environment variables the manifests may set that are not settings.
NON_SETTINGS_ENV = {"HOME", "TMPDIR"}


def worker(r: Rendered) -> Doc:
    return r.one("Deployment", "streamer")


def container(workload: Doc) -> Doc:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def example_secrets() -> list[Doc]:
    return load_yaml_docs(K8S / "components" / "example-secret" / "secret.example.yaml")


def example_secret(name: str = "streamer-secrets") -> Doc:
    (secret,) = [s for s in example_secrets() if s["metadata"]["name"] == name]
    return secret


def settings_from(r: Rendered, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the worker would build them from this overlay's ConfigMap and the example Secret."""
    for key in list(os.environ):
        if key.startswith("STREAMER_"):
            monkeypatch.delenv(key)
    for key, value in {**r.configmap_data(), **example_secret()["stringData"]}.items():
        monkeypatch.setenv(key, str(value))
    return Settings()


class TestRendering:
    def test_every_overlay_renders_and_has_the_worker_and_the_migration(self, rendered: Rendered) -> None:
        assert worker(rendered)
        job = rendered.one("Job", "streamer-migrate")
        assert container(job)["args"] == ["migrate"] and container(worker(rendered))["args"] == ["worker"]

    def test_every_object_is_namespaced_explicitly(self, rendered: Rendered) -> None:
        for doc in rendered.docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") in {"streamer", "kafka"}, doc["metadata"]["name"]


def pod_templates(r: Rendered) -> Iterator[tuple[str, Doc]]:
    """(workload name, pod spec) of every Deployment, Job and CronJob."""
    for d in r.of_kind("Deployment") + r.of_kind("Job"):
        yield d["metadata"]["name"], d["spec"]["template"]["spec"]
    for d in r.of_kind("CronJob"):
        yield d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def path_setting_env_names() -> set[str]:
    """STREAMER_<FIELD> of every setting that names a file or directory (typed Path)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {
        f"{prefix}{name}".upper() for name, field in Settings.model_fields.items()
        if field.annotation is Path or Path in typing.get_args(field.annotation)
    }


def container_env(r: Rendered, c: Doc) -> dict[str, str]:
    """The variables a container gets: its ConfigMaps' data (envFrom), then its own `env` values."""
    env: dict[str, str] = {}
    for ref in c.get("envFrom", []):
        if "configMapRef" in ref:
            env.update(r.one("ConfigMap", ref["configMapRef"]["name"])["data"])
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    return env


def image_paths() -> list[PurePosixPath]:
    """What the image ships: the destinations of the runtime stage's COPY instructions."""
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    return [PurePosixPath(i.args.split()[-1]) for i in runtime if i.keyword.upper() == "COPY"]


def kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a dev dependency")


class TestSchemaValidation:
    def test_core_kinds_are_valid_for_the_pinned_kubernetes_version(self, rendered: Rendered) -> None:
        validator = kubernetes_validate()
        core = [doc for doc in rendered.docs if doc["kind"] not in CRD_KINDS]
        for doc in core:
            validator.validate(doc, KUBERNETES_VERSION, strict=True)
        assert len(core) >= 10

    def test_the_validator_rejects_an_unknown_field(self) -> None:
        validator = kubernetes_validate()
        broken = copy.deepcopy(worker(render("base")))
        broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
        with pytest.raises(validator.ValidationError):
            validator.validate(broken, KUBERNETES_VERSION, strict=True)


class TestSettings:
    def test_every_variable_in_the_configmap_is_a_setting(self, rendered: Rendered) -> None:
        names = set(rendered.configmap_data())
        assert names <= settings_env_names(), names - settings_env_names()

    def test_every_key_of_the_example_secret_is_a_setting(self) -> None:
        names = set(example_secret()["stringData"])
        assert {"STREAMER_DATABASE_URL", "STREAMER_SASL_PASSWORD"} <= names <= settings_env_names()

    def test_every_variable_set_on_a_container_is_a_setting(self, rendered: Rendered) -> None:
        for workload, _ in rendered.pod_specs():
            names = {e["name"] for e in container(workload).get("env", [])} - NON_SETTINGS_ENV
            assert names <= settings_env_names(), names - settings_env_names()

    def test_the_settings_parse_with_the_overlays_values(
        self, rendered: Rendered, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(rendered, monkeypatch)
        assert settings.web_port == WEB_PORT
        assert str(settings.data_dir).startswith("/tmp/") and str(settings.model_dir) == "/app/onnx_models"

    def test_the_workloads_read_the_rendered_configmap_and_the_secret(self, rendered: Rendered) -> None:
        configmap = rendered.one("ConfigMap")["metadata"]["name"]
        for workload, _ in rendered.pod_specs():
            refs = container(workload)["envFrom"]
            assert {"configMapRef": {"name": configmap}} in refs
            assert any("secretRef" in ref for ref in refs), workload["metadata"]["name"]

    def test_the_worker_and_the_schema_owner_read_different_database_credentials(self, rendered: Rendered) -> None:
        """The worker's role may only append audit rows; the tables' owner (migrate, partitions) may change them."""
        def secrets(template: Doc) -> set[str]:
            refs = template["spec"]["containers"][0].get("envFrom", [])
            return {ref["secretRef"]["name"] for ref in refs if "secretRef" in ref}

        assert secrets(worker(rendered)["spec"]["template"]) == {"streamer-secrets"}
        owner_pods = [rendered.one("Job", "streamer-migrate")["spec"]["template"]]
        owner_pods += [c["spec"]["jobTemplate"]["spec"]["template"] for c in rendered.of_kind("CronJob")]
        for template in owner_pods:
            assert secrets(template) == {"streamer-migration-secrets"}, template["metadata"]

    def test_the_example_secrets_hold_placeholders_only(self) -> None:
        for secret in example_secrets():
            assert "data" not in secret
            for key, value in secret["stringData"].items():
                if "PASSWORD" in key or "URL" in key or key == "STREAMER_RECORD_KEYS":
                    assert "REPLACE_ME" in value, key


class TestPods:
    def test_the_pods_meet_the_restricted_profile(self, rendered: Rendered) -> None:
        for workload, pod in rendered.pod_specs():
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            ctx = container(workload)["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["runAsNonRoot"] is True

    def test_tmp_is_a_writable_empty_dir(self, rendered: Rendered) -> None:
        for workload, pod in rendered.pod_specs():
            mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], workload["metadata"]["name"]

    def test_every_path_a_pod_reads_from_its_settings_is_mounted_or_shipped_in_the_image(
        self, rendered: Rendered
    ) -> None:
        assert {"STREAMER_SSL_CA_LOCATION", "STREAMER_MODEL_DIR", "STREAMER_DATA_DIR"} <= path_setting_env_names()
        names = set()
        for name, pod in pod_templates(rendered):
            names.add(name)
            for c in pod["containers"]:
                roots = [PurePosixPath(m["mountPath"]) for m in c.get("volumeMounts", [])] + image_paths()
                for key, value in container_env(rendered, c).items():
                    if key in path_setting_env_names():
                        path = PurePosixPath(value)
                        assert path.is_absolute(), f"{name}: {key}={value} depends on the working directory"
                        assert any(path.is_relative_to(root) for root in roots), f"{name}: {key}={value} is not mounted"
        assert {"streamer", "streamer-migrate", "streamer-audit-partitions"} <= names

    def test_every_container_has_requests_and_limits(self, rendered: Rendered) -> None:
        for workload, _ in rendered.pod_specs():
            resources = container(workload)["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])

    def test_the_worker_probes_health_and_readiness_on_the_web_port(self, rendered: Rendered) -> None:
        c = container(worker(rendered))
        assert c["ports"] == [{"name": "http", "containerPort": WEB_PORT, "protocol": "TCP"}]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert c[probe]["httpGet"] == {"path": path, "port": "http"}, probe

    def test_workers_prefer_different_nodes(self, rendered: Rendered) -> None:
        anti = worker(rendered)["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"]["matchLabels"] == worker(rendered)["spec"]["selector"]["matchLabels"]

    def test_a_disruption_budget_covers_the_workers(self, rendered: Rendered) -> None:
        pdb = rendered.one("PodDisruptionBudget")
        assert pdb["spec"]["selector"]["matchLabels"] == worker(rendered)["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["maxUnavailable"] == 1
        # an unready worker (not yet in its group) must never block a node drain
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

    def test_the_metrics_service_selects_the_workers_on_the_web_port(self, rendered: Rendered) -> None:
        service = rendered.one("Service", "streamer")
        assert service["spec"]["selector"] == worker(rendered)["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"


class TestNetworkPolicy:
    def policy(self, r: Rendered, name: str) -> Doc:
        return r.one("NetworkPolicy", name)

    def test_the_namespace_denies_everything_by_default(self, rendered: Rendered) -> None:
        deny = self.policy(rendered, "default-deny")["spec"]
        assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
        assert "ingress" not in deny and "egress" not in deny

    def test_the_worker_accepts_traffic_only_on_the_web_port(self, rendered: Rendered) -> None:
        spec = self.policy(rendered, "streamer-worker")["spec"]
        assert spec["podSelector"]["matchLabels"] == worker(rendered)["spec"]["selector"]["matchLabels"]
        assert [p for rule in spec["ingress"] for p in rule["ports"]] == [{"port": WEB_PORT, "protocol": "TCP"}]

    def test_the_worker_reaches_only_kafka_postgres_the_mlflow_server_and_dns(self, rendered: Rendered) -> None:
        egress = self.policy(rendered, "streamer-worker")["spec"]["egress"]
        namespaces = {r["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for r in egress}
        ports = {(p["port"], p["protocol"]) for rule in egress for p in rule["ports"]}
        assert namespaces == {"kafka", "postgres", "mlflow", "kube-system"}
        assert ports == {(9092, "TCP"), (9093, "TCP"), (5432, "TCP"), (5000, "TCP"), (53, "UDP"), (53, "TCP")}

    def test_prod_follows_the_mlflow_registry_through_a_server_the_worker_may_reach(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rendered = render("overlays/prod")
        settings = settings_from(rendered, monkeypatch)
        assert settings.model_registry == "mlflow"
        assert settings.mlflow_tracking_uri == "http://mlflow.mlflow.svc:5000"
        egress = self.policy(rendered, "streamer-worker")["spec"]["egress"]
        (mlflow,) = [r for r in egress if r["to"][0]["namespaceSelector"]["matchLabels"].get(
            "kubernetes.io/metadata.name") == "mlflow"]
        assert mlflow["ports"] == [{"port": 5000, "protocol": "TCP"}]

    def test_the_migration_reaches_only_postgres_and_dns(self, rendered: Rendered) -> None:
        spec = self.policy(rendered, "streamer-migrate")["spec"]
        assert spec["ingress"] == []
        assert {p["port"] for rule in spec["egress"] for p in rule["ports"]} == {5432, 53}


@pytest.fixture(params=["base", "overlays/prod"])
def autoscaled(request: pytest.FixtureRequest) -> Rendered:
    """The overlays where KEDA scales the workers (dev runs one fixed replica)."""
    return render(str(request.param))


class TestCustomResources:
    """Fields each operator needs, since no CRD schema is at hand to validate against."""

    def topics(self, r: Rendered) -> dict[str, Doc]:
        return {t["spec"].get("topicName", t["metadata"]["name"]): t for t in r.of_kind("KafkaTopic")}

    def test_scaled_object_scales_the_worker_on_the_scoring_groups_lag(
        self, autoscaled: Rendered, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(autoscaled, monkeypatch)
        scaled = autoscaled.one("ScaledObject")
        spec = scaled["spec"]
        assert spec["scaleTargetRef"]["name"] == worker(autoscaled)["metadata"]["name"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values must be strings"
        assert meta["consumerGroup"] == settings.scorer_group() == "streamer-scorer"
        assert meta["topic"] == settings.input_topic == "loan-applications"
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        assert int(meta["lagThreshold"]) > 0

    def test_the_lag_threshold_is_seconds_of_a_workers_measured_throughput_not_its_healthy_lag(
        self, autoscaled: Rendered
    ) -> None:
        """KEDA adds workers while lag per worker exceeds lagThreshold. A healthy worker always carries some lag
        (its batches in flight, its commit cadence: well under a second of its work), so the threshold must
        lie above that; and a worker more than 10 s behind should get help. Throughput: the last committed
        bench run's one-worker figure (deploy/README.md, "Autoscaling")."""
        bench = json.loads((REPO / "bench" / "results" / "latest.json").read_text())
        per_worker = bench["systems"]["streamer_1_worker"]["events_per_s"]["median"]
        threshold = int(autoscaled.one("ScaledObject")["spec"]["triggers"][0]["metadata"]["lagThreshold"])
        assert per_worker * 1 <= threshold <= per_worker * 10, (threshold, per_worker)

    def test_scaling_up_is_quick_and_down_is_slow(self, autoscaled: Rendered) -> None:
        behavior = autoscaled.one("ScaledObject")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        up, down = behavior["scaleUp"], behavior["scaleDown"]
        assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]
        assert any(p["type"] == "Pods" and p["value"] >= 2 for p in up["policies"]), up

    def test_scaled_object_never_exceeds_one_worker_per_partition(self, autoscaled: Rendered) -> None:
        spec = autoscaled.one("ScaledObject")["spec"]
        partitions = self.topics(autoscaled)["loan-applications"]["spec"]["partitions"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        assert spec["maxReplicaCount"] <= int(autoscaled.configmap_data()["STREAMER_TOPIC_PARTITIONS"])

    def test_trigger_authentication_reads_keys_that_the_secret_has(self, prod: Rendered) -> None:
        auth_name = prod.one("ScaledObject")["spec"]["triggers"][0]["authenticationRef"]["name"]
        auth = prod.one("TriggerAuthentication", auth_name)
        secret_keys = set(example_secret()["stringData"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert {"parameter", "name", "key"} <= set(ref)
            if ref["name"] == "streamer-secrets":
                assert ref["key"] in secret_keys

    def test_service_monitor_scrapes_metrics_from_the_service_port(self, rendered: Rendered) -> None:
        monitor = rendered.one("ServiceMonitor")["spec"]
        service = rendered.one("Service", "streamer")
        labels = service["metadata"]["labels"]
        assert monitor["selector"]["matchLabels"].items() <= labels.items()
        (endpoint,) = monitor["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"

    def test_prometheus_rule_has_named_alerts_with_severity_and_summary(self, rendered: Rendered) -> None:
        prometheus_rule = rendered.one("PrometheusRule")
        assert prometheus_rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # its default ruleSelector
        groups = prometheus_rule["spec"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert all(group["name"] for group in groups)
        for rule in rules:
            assert rule["alert"] and rule["expr"].strip()
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]
            assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s"))
        names = {rule["alert"] for rule in rules}
        assert {"StreamerConsumerLagGrowing", "StreamerDeadLetterRateHigh", "StreamerNoDecisions",
                "StreamerModelLoadFailed", "StreamerAuditLagHigh"} <= names

    def test_the_overlay_patch_the_deploy_readme_shows_changes_the_release_label(self, tmp_path: Path) -> None:
        text = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
        snippet = text[text.index("set the label in your overlay"):]
        snippet = snippet[snippet.index("```yaml\n") + len("```yaml\n"):snippet.index("```\n", 8)]
        base = os.path.relpath(K8S / "base", tmp_path)  # kustomize refuses absolute paths to a base
        (tmp_path / "kustomization.yaml").write_text(f"resources:\n  - {base}\n{snippet}", encoding="utf-8")
        overlay = render(os.path.relpath(tmp_path, K8S))
        assert overlay.one("PrometheusRule")["metadata"]["labels"]["release"] == "my-release"

    def test_kafka_topics_exist_for_the_three_topics_of_the_settings(
        self, rendered: Rendered, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(rendered, monkeypatch)
        topics = self.topics(rendered)
        assert set(topics) == {settings.input_topic, settings.decision_topic, settings.dlq_topic}
        for name, topic in topics.items():
            assert topic["metadata"]["namespace"] == "kafka", name
            assert topic["metadata"]["labels"]["strimzi.io/cluster"], name
            spec = topic["spec"]
            assert spec["partitions"] == settings.topic_partitions, name
            assert 1 <= int(spec["config"]["min.insync.replicas"]) <= spec["replicas"], name


class TestOverlays:
    def test_dev_runs_one_worker_without_an_autoscaler(self, dev: Rendered) -> None:
        assert worker(dev)["spec"]["replicas"] == 1
        assert dev.of_kind("ScaledObject") == []

    def test_base_and_prod_leave_the_replica_count_to_keda(self) -> None:
        for overlay in ("base", "overlays/prod"):
            assert "replicas" not in worker(render(overlay))["spec"], overlay

    def test_prod_runs_more_workers_with_bigger_limits_than_base(self, prod: Rendered) -> None:
        base = render("base")
        assert prod.one("ScaledObject")["spec"]["minReplicaCount"] > base.one("ScaledObject")["spec"]["minReplicaCount"]
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert quantity(container(worker(prod))["resources"][kind][resource]) > quantity(
                    container(worker(base))["resources"][kind][resource]), (kind, resource)

    def test_prod_topics_keep_three_replicas_and_need_two_in_sync(self, prod: Rendered) -> None:
        for topic in prod.of_kind("KafkaTopic"):
            assert topic["spec"]["replicas"] == 3
            assert topic["spec"]["config"]["min.insync.replicas"] == 2
        assert prod.configmap_data()["STREAMER_TOPIC_REPLICATION"] == "3"

    def test_prod_talks_to_kafka_over_sasl_ssl_with_the_cluster_ca(
        self, prod: Rendered, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(prod, monkeypatch)
        assert settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism
        mounts = {m["mountPath"] for m in container(worker(prod))["volumeMounts"]}
        assert settings.ssl_ca_location is not None
        assert str(settings.ssl_ca_location.parent) in mounts

    def test_prods_kafka_user_has_exactly_the_acls_the_settings_need(
        self, prod: Rendered, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = settings_from(prod, monkeypatch)
        user = prod.one("KafkaUser")
        assert user["metadata"]["name"] == example_secret()["stringData"]["STREAMER_SASL_USERNAME"]
        assert user["spec"]["authentication"]["type"] == settings.sasl_mechanism.lower()  # type: ignore[union-attr]
        granted = {(a["resource"]["type"], a["resource"]["name"], a["resource"].get("patternType", "literal")):
                   set(a["operations"]) for a in user["spec"]["authorization"]["acls"]}
        # What every transactional_id() of these settings starts with, whatever a pod fills in after it
        txn_prefix = transactional_id(settings.model_copy(update={"group_instance_id": "POD"})).removesuffix("POD")
        assert granted == {
            ("topic", settings.input_topic, "literal"): {"Read", "Describe"},
            ("topic", settings.decision_topic, "literal"): {"Read", "Write", "Describe"},
            ("topic", settings.dlq_topic, "literal"): {"Write", "Describe"},
            ("group", settings.scorer_group(), "literal"): {"Read", "Describe"},
            ("group", settings.audit_group(), "literal"): {"Read", "Describe"},
            ("transactionalId", txn_prefix, "prefix"): {"Write", "Describe"},
        }

    def test_only_dev_ships_the_example_secrets(self, rendered: Rendered) -> None:
        secrets = {s["metadata"]["name"] for s in rendered.of_kind("Secret")}
        assert secrets == ({"streamer-secrets", "streamer-migration-secrets"} if rendered.overlay == "overlays/dev"
                           else set())


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (500m, 2, 1Gi, 512Mi) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)(m|Ki|Mi|Gi|)", str(value)).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def sync_wave(doc: Doc) -> int:
    return int((doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


class TestMigrationOrdering:
    """Argo CD applies in sync waves and waits for each wave (a Job: until it completes) before the next. The
    migration must run after everything it reads exists, and before any worker or CronJob of the new version."""

    def test_the_migration_runs_after_what_it_reads_and_before_the_workers(self, rendered: Rendered) -> None:
        job = rendered.one("Job", "streamer-migrate")
        annotations = job["metadata"]["annotations"]
        # A PreSync hook runs before the sync creates the namespace, ServiceAccount and ConfigMap it needs.
        assert annotations.get("argocd.argoproj.io/hook") == "Sync", annotations
        pod = job["spec"]["template"]["spec"]
        needed = [rendered.one("Namespace", job["metadata"]["namespace"]),
                  rendered.one("ServiceAccount", pod["serviceAccountName"])]
        needed += [rendered.one("ConfigMap", source["configMapRef"]["name"])
                   for source in container(job).get("envFrom", []) if "configMapRef" in source]
        needed += [d for d in rendered.of_kind("Secret")
                   if any(s.get("secretRef", {}).get("name") == d["metadata"]["name"]
                          for s in container(job).get("envFrom", []))]
        needed += [p for p in rendered.of_kind("NetworkPolicy")
                   if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") == "migrate"]
        for doc in needed:
            assert sync_wave(doc) < sync_wave(job), (
                f"{rendered.overlay}: {doc['kind']} {doc['metadata']['name']} (wave {sync_wave(doc)}) is not applied "
                f"before the migration (wave {sync_wave(job)})")
        for later in rendered.of_kind("Deployment") + rendered.of_kind("CronJob"):
            assert sync_wave(later) > sync_wave(job), (
                f"{rendered.overlay}: {later['kind']} {later['metadata']['name']} starts with the migration, not after")
