"""docker-compose.yml: `docker compose config` where Docker is installed, and its structure everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.conftest import REPO, settings_env_names, yaml

COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
STREAMER_SERVICES = ("migrate", "worker")


def compose_cli() -> list[str] | None:
    for argv in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(argv[0]) and subprocess.run(
            [*argv, "version"], capture_output=True, check=False
        ).returncode == 0:
            return argv
    return None


class TestComposeConfig:
    def test_docker_compose_accepts_the_file(self) -> None:
        argv = compose_cli()
        if argv is None:
            pytest.skip("neither `docker compose` nor `docker-compose` is installed; the YAML checks below still run")
        proc = subprocess.run(
            [*argv, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0, proc.stderr


class TestServices:
    def test_it_has_the_broker_database_migration_worker_and_monitoring(self) -> None:
        assert {"kafka", "postgres", "migrate", "worker", "prometheus", "grafana"} <= set(SERVICES)

    def test_every_image_has_an_explicit_tag_that_is_not_latest(self) -> None:
        for name, service in SERVICES.items():
            image = service.get("image")
            if "build" not in service:
                assert image and re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), name

    def test_kafka_is_apache_kafka_in_kraft_mode_with_one_broker(self) -> None:
        kafka = SERVICES["kafka"]
        env = kafka["environment"]
        assert kafka["image"].startswith("apache/kafka:")
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 1
        assert not any("ZOOKEEPER" in key for key in env) and "zookeeper" not in SERVICES

    def test_the_migration_and_the_worker_are_built_from_the_dockerfile(self) -> None:
        for name in STREAMER_SERVICES:
            build = SERVICES[name]["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (REPO / context / "Dockerfile").is_file(), name
        assert SERVICES["migrate"]["command"] == ["migrate"] and SERVICES["worker"]["command"] == ["worker"]

    def test_the_streamer_containers_run_read_only_with_a_tmpfs_on_tmp(self) -> None:
        for name in STREAMER_SERVICES:
            service = SERVICES[name]
            assert service["read_only"] is True, name
            assert any(str(t).split(":")[0] == "/tmp" for t in service["tmpfs"]), name
            assert service["cap_drop"] == ["ALL"], name

    def test_the_worker_waits_for_a_healthy_broker_and_database_and_a_finished_migration(self) -> None:
        depends = SERVICES["worker"]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"

    @pytest.mark.parametrize("name", ["kafka", "postgres", "worker", "prometheus", "grafana"])
    def test_long_running_services_have_a_health_check(self, name: str) -> None:
        check = SERVICES[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and not check.get("disable")

    def test_the_worker_health_check_asks_healthz(self) -> None:
        assert any("/healthz" in part for part in SERVICES["worker"]["healthcheck"]["test"])


class TestStreamerEnvironment:
    @pytest.mark.parametrize("name", STREAMER_SERVICES)
    def test_every_variable_is_a_setting(self, name: str) -> None:
        env = set(SERVICES[name]["environment"])
        assert env <= settings_env_names(), env - settings_env_names()

    def test_the_bootstrap_server_is_the_brokers_advertised_internal_listener(self) -> None:
        advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
        bootstrap = SERVICES["worker"]["environment"]["STREAMER_KAFKA_BOOTSTRAP"]
        assert f"PLAINTEXT://{bootstrap}" in advertised

    def test_the_database_urls_match_the_postgres_service_and_its_roles(self) -> None:
        """The migration runs as the tables' owner, the worker as a login role in streamer_worker (append only);
        the database's init script makes both, with the passwords the URLs carry."""
        init = (REPO / "deploy" / "compose" / "postgres-init.sql").read_text()
        users = {}
        for service in ("migrate", "worker"):
            url = urlsplit(SERVICES[service]["environment"]["STREAMER_DATABASE_URL"])
            assert (url.hostname, url.port or 5432, url.path.lstrip("/")) == ("postgres", 5432, "streamer")
            assert f"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}'" in init, service
            users[service] = url.username
        assert users["migrate"] != users["worker"]
        assert f"CREATE DATABASE streamer OWNER {users['migrate']}" in init
        assert f"GRANT streamer_worker TO {users['worker']}" in init
        assert SERVICES["postgres"]["environment"]["POSTGRES_USER"] not in users.values(), "a superuser for the app"

    def test_the_worker_publishes_the_web_port(self) -> None:
        assert "6066:6066" in SERVICES["worker"]["ports"]


class TestMountedFiles:
    def test_every_bind_mounted_path_exists(self) -> None:
        for name, service in SERVICES.items():
            for volume in service.get("volumes", []):
                source = str(volume).split(":")[0]
                if source.startswith("."):
                    assert (REPO / source).exists(), f"{name}: {source}"

    def test_prometheus_scrapes_the_worker_and_loads_the_alerts(self) -> None:
        mounts = {str(v).split(":")[1]: REPO / str(v).split(":")[0] for v in SERVICES["prometheus"]["volumes"]}
        config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert jobs["streamer"]["metrics_path"] == "/metrics"
        assert jobs["streamer"]["static_configs"][0]["targets"] == ["worker:6066"]
        assert all(rule_file in mounts for rule_file in config["rule_files"])

    def test_prometheus_loads_no_alert_on_an_exporter_compose_does_not_run(self) -> None:
        """kube-state-metrics and cAdvisor exist only on Kubernetes: their alerts and absent() guards would
        never resolve here, so they live in alerts-kubernetes.yml, which only the PrometheusRule holds."""
        mounts = {str(v).split(":")[1]: REPO / str(v).split(":")[0] for v in SERVICES["prometheus"]["volumes"]}
        config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
        loaded = [mounts[rule_file] for rule_file in config["rule_files"]]
        assert REPO / "deploy" / "prometheus" / "alerts-kubernetes.yml" not in loaded
        for path in loaded:
            for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
                for rule in group["rules"]:
                    assert not re.search(r"\b(kube|container)_\w+", rule["expr"]), rule["alert"]

    def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard(self) -> None:
        mounts = {str(v).split(":")[1]: REPO / str(v).split(":")[0] for v in SERVICES["grafana"]["volumes"]}
        provisioning = mounts["/etc/grafana/provisioning"]
        datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
        source = datasource["datasources"][0]
        assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
        provider = yaml.safe_load((provisioning / "dashboards" / "streamer.yml").read_text(encoding="utf-8"))
        dashboards = provider["providers"][0]["options"]["path"]
        assert (mounts[dashboards] / "streamer.json").is_file()
