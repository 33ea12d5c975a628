"""The Terraform module (deploy/terraform/modules/streamer) and its example, checked without applying them.

`terraform init` cannot install the providers here (their registry is out of reach), so `terraform validate` and
`plan` never run. Instead:
- every .tf file parses (python-hcl2); where a terraform binary exists, `terraform fmt -check` passes, and Terraform
  validates and evaluates everything that needs no provider: the variables, the locals and the example's module call;
- what `terraform validate` would catch in Python: undeclared variables, locals and module outputs, module inputs the
  module does not declare or required ones missing, unpinned providers;
- the ACLs equal the Strimzi KafkaUser's, the topics the KafkaTopics' and the worker's defaults, the roles the
  migrations' and compose's;
- checkov with the project's policies (deploy/terraform/checkov; checkov has none for these providers): none fails,
  and each catches a planted mistake.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.config import Settings
from streamer.runtime.clients import transactional_id
from tests.deploy.conftest import K8S, REPO, load_yaml_docs, render, settings_env_names, yaml
from tests.deploy.test_checkov import checkov

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is a dev dependency: pip install -e '.[dev]'")
from hcl2.utils import SerializationOptions  # noqa: E402  (after the importorskip that names the extra)

TERRAFORM_DIR = REPO / "deploy" / "terraform"
MODULE = TERRAFORM_DIR / "modules" / "streamer"
EXAMPLE = TERRAFORM_DIR / "examples" / "managed"
POLICIES = TERRAFORM_DIR / "checkov"
SQL = REPO / "streamer" / "audit" / "sql"
TERRAFORM = shutil.which("terraform")
# Offline and quiet: no version check against HashiCorp, no CLI config, no prompt.
TERRAFORM_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull, "TF_INPUT": "0",
                 "TF_IN_AUTOMATION": "1"}
_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
_REF = re.compile(r"\$\{var\.(\w+)((?:\.\w+)*)\}")
# Module-call arguments that are Terraform's, not the module's variables.
META_ARGUMENTS = {"source", "version", "providers", "count", "for_each", "depends_on"}
# The kafka provider's spelling of the KafkaUser's resource types and pattern types.
KAFKA_RESOURCE_TYPES = {"Topic": "topic", "Group": "group", "TransactionalID": "transactionalId"}
KAFKA_PATTERNS = {"Literal": "literal", "Prefixed": "prefix"}

Tf = dict[str, Any]
Acls = dict[tuple[str, str, str], set[str]]


def tf_files(directory: Path = TERRAFORM_DIR) -> list[Path]:
    return sorted(directory.rglob("*.tf"))


def parse(path: Path) -> Tf:
    with path.open(encoding="utf-8") as f:
        return dict(hcl2.load(f, serialization_options=_OPTIONS))


def blocks(directory: Path, kind: str) -> dict[str, Tf]:
    """Every `kind "name" {...}` (variable, output, module, provider) of one module's files, by name."""
    found: dict[str, Tf] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for name, body in block.items():
                assert name not in found, f"{kind} {name} declared twice in {directory}"
                found[name] = body
    return found


def locals_of(directory: Path) -> Tf:
    merged: Tf = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get("locals", []):
            merged.update(block)
    return merged


def resources(directory: Path) -> dict[str, Tf]:
    """Every resource, as "type.name"."""
    found: dict[str, Tf] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    found[f"{rtype}.{name}"] = body
    return found


def references(directory: Path, prefix: str) -> set[str]:
    """The names after `prefix.` (var, local, module.streamer) in every expression of one module's files."""
    text = json.dumps([parse(p) for p in sorted(directory.glob("*.tf"))])
    return set(re.findall(rf"(?<![\w.]){re.escape(prefix)}\.(\w+)", text))


def defaults(directory: Path = MODULE) -> Tf:
    return {name: body["default"] for name, body in blocks(directory, "variable").items() if "default" in body}


def resolve(value: Any, variables: Tf) -> Any:
    """A parsed value with each `${var.x[.key...]}` replaced by the variable's default. Anything else is left for
    Terraform to evaluate, so it fails here: keep the cross-checked locals plain data."""
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> Any:
        found = variables[match[1]]
        for key in filter(None, match[2].split(".")):
            found = found[key]
        return found

    whole = _REF.fullmatch(value)
    if whole:
        return lookup(whole)
    resolved = _REF.sub(lambda m: str(lookup(m)), value)
    assert "${" not in resolved, f"cannot resolve {value!r} without Terraform"
    return resolved


def kafka_user_acls() -> Acls:
    user = next(d for d in load_yaml_docs(K8S / "overlays" / "prod" / "kafkauser.yaml") if d["kind"] == "KafkaUser")
    return {(a["resource"]["type"], a["resource"]["name"], a["resource"].get("patternType", "literal")):
            set(a["operations"]) for a in user["spec"]["authorization"]["acls"]}


def as_kafka_user_acls(entries: list[Tf]) -> Acls:
    """Terraform ACL entries (one per resource with its operations, or one per operation) in the KafkaUser's terms."""
    acls: Acls = {}
    for e in entries:
        key = (KAFKA_RESOURCE_TYPES[e["resource_type"]], e["resource_name"], KAFKA_PATTERNS[e["pattern"]])
        acls.setdefault(key, set()).update(e["operations"] if "operations" in e else [e["operation"]])
    return acls


def base_topics() -> dict[str, Tf]:
    """k8s/base/kafka/topics.yaml's KafkaTopics by topic name."""
    return {d["spec"]["topicName"]: d["spec"] for d in load_yaml_docs(K8S / "base" / "kafka" / "topics.yaml")}


def sql_text() -> str:
    """The migrations' statements, less their comments (which show a DBA's own CREATE ROLE)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SQL.glob("*.sql")))
    return re.sub(r"--[^\n]*", "", text)


class TestParse:
    def test_every_tf_file_parses(self) -> None:
        """Every .tf file is HCL2 python-hcl2 can read, and the layout is the documented one."""
        names = {p.relative_to(TERRAFORM_DIR).as_posix() for p in tf_files()}
        assert {"modules/streamer/variables.tf", "modules/streamer/locals.tf", "examples/managed/main.tf",
                "examples/managed/providers.tf"} <= names, names
        for path in tf_files():
            assert parse(path), path

    def test_terraform_fmt_finds_nothing_to_change(self) -> None:
        """Terraform's own parser reads every file and finds it in canonical format."""
        if TERRAFORM is None:
            pytest.skip("terraform is not installed, so `terraform fmt -check` cannot run")
        proc = subprocess.run([TERRAFORM, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
                              capture_output=True, text=True, check=False, timeout=60, env=TERRAFORM_ENV)
        assert proc.returncode == 0, proc.stdout + proc.stderr


class TestReferences:
    @pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
    def test_every_referenced_variable_and_local_is_declared(self, directory: Path) -> None:
        """A var.x or local.x that nothing declares would fail `terraform validate`."""
        assert references(directory, "var") <= set(blocks(directory, "variable")), directory
        assert references(directory, "local") <= set(locals_of(directory)), directory

    def test_example_reads_only_outputs_the_module_declares(self) -> None:
        """module.streamer.x in the example names an output of the module."""
        assert references(EXAMPLE, "module.streamer") <= set(blocks(MODULE, "output"))

    def test_module_inputs_passed_by_the_example_exist_and_cover_the_required_ones(self) -> None:
        """The example passes only the module's variables, and every one without a default."""
        call = blocks(EXAMPLE, "module")["streamer"]
        assert (EXAMPLE / call["source"]).resolve() == MODULE
        passed = set(call) - META_ARGUMENTS
        variables = blocks(MODULE, "variable")
        assert passed <= set(variables), passed - set(variables)
        required = {name for name, body in variables.items() if "default" not in body}
        assert required <= passed, required - passed

    @pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
    def test_every_variable_and_output_says_what_it_is(self, directory: Path) -> None:
        """Variables have a type and a description, outputs a description."""
        for name, body in blocks(directory, "variable").items():
            assert "type" in body and body.get("description"), name
        for name, body in blocks(directory, "output").items():
            assert body.get("description"), name

    @pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
    def test_secrets_are_ephemeral_sensitive_variables_without_a_default(self, directory: Path) -> None:
        """A password reaches Terraform only as an ephemeral input, kept out of plans and state."""
        secrets = {name: body for name, body in blocks(directory, "variable").items()
                   if name.endswith("password")}
        assert secrets
        for name, body in secrets.items():
            assert body.get("sensitive") is True and body.get("ephemeral") is True and "default" not in body, name

    def test_no_file_holds_a_secret(self) -> None:
        """Neither the .tf files nor the tfvars example set a password literally."""
        example_vars = (EXAMPLE / "terraform.tfvars.example").read_text(encoding="utf-8")
        assert not re.search(r"^\s*\w*password\w*\s*=", example_vars, re.MULTILINE)
        for path in tf_files():
            assert not re.search(r"password\w*\s*=\s*\"", path.read_text(encoding="utf-8")), path


class TestProviders:
    def required(self, directory: Path) -> Tf:
        (terraform,) = blocks_of_terraform(directory)
        assert terraform.get("required_version") == ">= 1.11.0", "write-only attributes need Terraform 1.11"
        return dict(terraform["required_providers"][0])

    def test_versions_are_pinned(self) -> None:
        """The module allows patch releases of one minor; the example pins exactly that minor's version."""
        module, example = self.required(MODULE), self.required(EXAMPLE)
        assert set(module) == set(example) == {"kafka", "postgresql"}
        for name in module:
            assert module[name]["source"] == example[name]["source"]
            m = re.fullmatch(r"~> (\d+\.\d+)\.(\d+)", module[name]["version"])
            e = re.fullmatch(r"= (\d+\.\d+)\.(\d+)", example[name]["version"])
            assert m and e, (module[name], example[name])
            assert m[1] == e[1] and int(e[2]) >= int(m[2]), (module[name], example[name])

    def test_sources_are_the_providers_made_for_kafka_and_postgresql(self) -> None:
        """Mongey/kafka and cyrilgdn/postgresql, and only their resources are used."""
        assert {k: v["source"] for k, v in self.required(MODULE).items()} == {
            "kafka": "Mongey/kafka", "postgresql": "cyrilgdn/postgresql"}
        assert {r.split("_")[0] for r in resources(MODULE)} == {"kafka", "postgresql"}

    def test_the_example_configures_each_provider_from_variables(self) -> None:
        """One provider block per required provider; secrets come from variables, never literals."""
        providers = blocks(EXAMPLE, "provider")
        assert set(providers) == {"kafka", "postgresql"}
        assert providers["kafka"]["sasl_password"] == "${var.kafka_admin_password}"
        assert providers["kafka"]["tls_enabled"] is True
        assert providers["postgresql"]["password"] == "${var.postgres_admin_password}"
        assert providers["postgresql"]["superuser"] is False  # a managed service's admin is no superuser


def blocks_of_terraform(directory: Path) -> list[Tf]:
    found = [b for p in sorted(directory.glob("*.tf")) for b in parse(p).get("terraform", [])]
    assert len(found) == 1, directory
    return found


class TestKafka:
    def test_acls_are_exactly_the_kafka_users(self) -> None:
        """The module's ACLs, with its defaults, equal the Strimzi KafkaUser's (k8s/overlays/prod)."""
        acls = resolve(locals_of(MODULE)["worker_acls"], defaults())
        assert as_kafka_user_acls(acls) == kafka_user_acls()

    def test_each_acl_entry_becomes_one_allow_rule_for_the_principal(self) -> None:
        """kafka_acl takes every field from the entries, allows, and names the worker's principal."""
        acl = resources(MODULE)["kafka_acl.worker"]
        assert acl["for_each"] == "${local.worker_acl_entries}"
        assert {k: v for k, v in acl.items() if k != "for_each"} == {
            "acl_principal": "${var.kafka_principal}", "acl_host": "${var.acl_host}",
            "acl_operation": "${each.value.operation}", "acl_permission_type": "Allow",
            "resource_type": "${each.value.resource_type}", "resource_name": "${each.value.resource_name}",
            "resource_pattern_type_filter": "${each.value.pattern}"}
        assert defaults()["kafka_principal"] == "User:" + next(
            d for d in load_yaml_docs(K8S / "overlays" / "prod" / "kafkauser.yaml"))["metadata"]["name"]

    def test_names_are_the_workers_defaults(self) -> None:
        """Topics, groups and the transactional id prefix are what Settings() uses."""
        settings, d = Settings(), defaults()
        prefix = transactional_id(settings.model_copy(update={"group_instance_id": "POD"})).removesuffix("POD")
        assert (d["applications_topic"], d["decisions_topic"], d["dead_letter_topic"]) == (
            settings.input_topic, settings.decision_topic, settings.dlq_topic)
        assert (d["scorer_group"], d["audit_group"], d["transactional_id_prefix"]) == (
            settings.scorer_group(), settings.audit_group(), prefix)
        assert d["partitions"] == settings.topic_partitions

    def test_topics_match_the_kafka_topics(self) -> None:
        """Names, partitions, retention and cleanup equal k8s/base/kafka/topics.yaml's."""
        d = defaults()
        names = resolve(locals_of(MODULE)["topic_names"], d)
        k8s = base_topics()
        assert {t["name"] for t in names.values()} == set(k8s)
        for topic in names.values():
            spec = k8s[topic["name"]]
            assert (spec["partitions"], spec["config"]["retention.ms"], spec["config"]["cleanup.policy"]) == (
                d["partitions"], topic["retention_ms"], "delete"), topic
        assert '"cleanup.policy" = "delete"' in locals_of(MODULE)["topics"]

    def test_replication_is_the_prod_overlays(self) -> None:
        """Replication factor 3 and min.insync.replicas 2, as the prod overlay's KafkaTopics."""
        d = defaults()
        for topic in render("overlays/prod").of_kind("KafkaTopic"):
            assert (topic["spec"]["replicas"], topic["spec"]["config"]["min.insync.replicas"]) == (
                d["replication_factor"], d["min_insync_replicas"]), topic["metadata"]["name"]

    def test_worker_settings_output_names_real_settings(self) -> None:
        """Every key of the worker_settings outputs is a STREAMER_* setting."""
        for directory in (MODULE, EXAMPLE):
            text = json.dumps(blocks(directory, "output")["worker_settings"]["value"])
            keys = set(re.findall(r"\b(STREAMER_[A-Z_]+)\b", text))
            assert keys and keys <= settings_env_names(), keys - settings_env_names()


class TestPostgres:
    def test_worker_group_role_is_the_one_the_migrations_grant_to(self) -> None:
        """streamer_worker: migration 004 creates it if missing, and every GRANT in the migrations names it."""
        role = locals_of(MODULE)["worker_group_role"]
        sql = sql_text()
        assert set(re.findall(r"CREATE ROLE (\w+)", sql)) == {role}
        grantees = set(re.findall(r"^GRANT .+ TO (\w+);", sql, re.MULTILINE))
        assert grantees == {role}, grantees

    def test_roles_and_database_are_composes_and_the_readmes(self) -> None:
        """Owner, login role, membership and database as deploy/compose/postgres-init.sql makes them."""
        d = defaults()
        init = (REPO / "deploy" / "compose" / "postgres-init.sql").read_text(encoding="utf-8")
        group = locals_of(MODULE)["worker_group_role"]
        assert f"CREATE ROLE {d['owner_role']} LOGIN" in init
        assert f"CREATE DATABASE {d['database_name']} OWNER {d['owner_role']};" in init
        assert f"CREATE ROLE {d['worker_login_role']} LOGIN" in init
        assert f"GRANT {group} TO {d['worker_login_role']};" in init
        readme = (REPO / "deploy" / "README.md").read_text(encoding="utf-8")
        for role in (d["owner_role"], d["worker_login_role"]):
            assert f"postgresql://{role}:" in readme, role

    def test_roles_are_what_the_migrations_expect(self) -> None:
        """The group cannot log in, the login role inherits it, the owner owns the database."""
        r = resources(MODULE)
        assert r["postgresql_role.worker_group"] == {"name": "${local.worker_group_role}", "login": False}
        login = r["postgresql_role.worker_login"]
        assert login["login"] is True and login["inherit"] is True
        assert login["roles"] == ["${postgresql_role.worker_group.name}"]
        assert r["postgresql_role.owner"]["login"] is True
        assert r["postgresql_database.audit"]["owner"] == "${postgresql_role.owner.name}"

    def test_terraform_grants_nothing_the_migrations_own(self) -> None:
        """Only database-level grants here: postgresql_grant would revoke the migrations' table privileges."""
        r = resources(MODULE)
        assert not any(name.startswith("postgresql_default_privileges.") for name in r)
        grants = {name: body for name, body in r.items() if name.startswith("postgresql_grant.")}
        assert grants and all(g["object_type"] == "database" for g in grants.values()), grants


@pytest.fixture(scope="module")
def skeleton() -> Iterator[Path]:
    """The module's variables and locals and the example's variables and module call, with no resource: what
    Terraform can validate and evaluate without a provider. Yields the root's directory."""
    if TERRAFORM is None:
        pytest.skip("terraform is not installed: the static checks above stand in for it")
    with tempfile.TemporaryDirectory() as tmp:
        module, root = Path(tmp) / "module", Path(tmp) / "root"
        module.mkdir()
        root.mkdir()
        for name in ("variables.tf", "locals.tf"):
            shutil.copy(MODULE / name, module)
        (module / "probe.tf").write_text(
            'terraform {\n  required_version = ">= 1.11.0"\n}\n'
            + "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in locals_of(MODULE)), encoding="utf-8")
        shutil.copy(EXAMPLE / "variables.tf", root)
        main = (EXAMPLE / "main.tf").read_text(encoding="utf-8")
        (root / "main.tf").write_text(main.replace('"../../modules/streamer"', '"../module"'), encoding="utf-8")
        (root / "versions.tf").write_text('terraform {\n  required_version = ">= 1.11.0"\n}\n', encoding="utf-8")
        for directory in (root, module):
            terraform(directory, "init", "-backend=false")
        yield root


def terraform(directory: Path, *args: str, stdin: str | None = None) -> str:
    assert TERRAFORM is not None
    proc = subprocess.run([TERRAFORM, f"-chdir={directory}", *args, "-no-color"], input=stdin, capture_output=True,
                          text=True, check=False, timeout=120, env=TERRAFORM_ENV)
    assert proc.returncode == 0, f"terraform {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def evaluate(skeleton: Path, expression: str) -> Any:
    """An expression of the module, with its defaults, evaluated by `terraform console`."""
    module = skeleton.parent / "module"
    out = terraform(module, "console", "-var=owner_password=x", "-var=worker_password=x",
                    stdin=f"jsonencode({expression})\n")
    return json.loads(json.loads(out))


class TestTerraformWithoutProviders:
    def test_variables_locals_and_the_module_call_validate(self, skeleton: Path) -> None:
        """terraform validate accepts the variables, locals and the example's call of the module."""
        report = json.loads(terraform(skeleton, "validate", "-json"))
        assert report["valid"] and report["error_count"] == 0, report["diagnostics"]

    def test_terraform_evaluates_the_kafka_users_acls(self, skeleton: Path) -> None:
        """The for_each map kafka_acl iterates is, evaluated by Terraform, exactly the KafkaUser's ACLs."""
        entries = evaluate(skeleton, "local.worker_acl_entries")
        assert all(key == f"{e['resource_type']}:{e['resource_name']}:{e['operation']}" for key, e in entries.items())
        assert as_kafka_user_acls(list(entries.values())) == kafka_user_acls()

    def test_terraform_evaluates_the_kafka_topics_configs(self, skeleton: Path) -> None:
        """Each topic's config, evaluated by Terraform, is its KafkaTopic's with the prod overlay's min ISR."""
        topics = evaluate(skeleton, "local.topics")
        k8s = base_topics()
        for topic in topics.values():
            expected = {k: str(v) for k, v in k8s[topic["name"]]["config"].items()}
            expected["min.insync.replicas"] = str(defaults()["min_insync_replicas"])
            assert topic["config"] == expected, topic


def scan(directory: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [checkov(), "--directory", str(directory), "--framework", "terraform", "--external-checks-dir", str(POLICIES),
         "--output", "json", "--compact", "--skip-download"],
        capture_output=True, text=True, check=False, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return dict(report[0] if isinstance(report, list) else report)


def policy_ids() -> set[str]:
    return {yaml.safe_load(p.read_text(encoding="utf-8"))["metadata"]["id"] for p in POLICIES.glob("*.yaml")}


# One planted mistake per policy: (file under deploy/terraform, text, replacement, the policy that must fail).
PLANTED = [
    ("examples/managed/providers.tf", "skip_tls_verify   = false", "skip_tls_verify   = true", "CKV2_STREAMER_1"),
    ("examples/managed/variables.tf", 'default     = "verify-full"', 'default     = "disable"', "CKV2_STREAMER_2"),
    ("modules/streamer/postgres.tf", "password_wo         = var.owner_password\n  password_wo_version = "
     "var.owner_password_version", 'password = "in-the-state"', "CKV2_STREAMER_3"),
    ("modules/streamer/postgres.tf", "login = false", "login = false\n  superuser = true", "CKV2_STREAMER_4"),
    ("modules/streamer/kafka.tf", 'acl_permission_type          = "Allow"', 'acl_permission_type = "Deny"',
     "CKV2_STREAMER_5"),
    ("modules/streamer/kafka.tf", "replication_factor = var.replication_factor", "replication_factor = 1",
     "CKV2_STREAMER_6"),
]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """checkov's report on deploy/terraform, scanned once."""
    return scan(TERRAFORM_DIR)


class TestCheckov:
    def test_no_policy_fails(self, report: dict[str, Any]) -> None:
        """checkov with the project's policies finds nothing, and skips nothing."""
        results = report["results"]
        assert not results["failed_checks"], [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
        assert not results["skipped_checks"], [c["check_id"] for c in results["skipped_checks"]]
        assert report["summary"]["parsing_errors"] == 0

    def test_every_policy_applies_to_something(self, report: dict[str, Any]) -> None:
        """Each policy passed on at least one block, so none is silently vacuous."""
        passed = {c["check_id"] for c in report["results"]["passed_checks"]}
        assert passed == policy_ids() == {p[3] for p in PLANTED}

    def test_each_policy_catches_its_planted_mistake(self, tmp_path: Path) -> None:
        """With one mistake per policy planted in a copy, every policy fails."""
        copy = tmp_path / "terraform"
        shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns("checkov"))
        for relative, text, replacement, _ in PLANTED:
            path = copy / relative
            source = path.read_text(encoding="utf-8")
            assert source.count(text) == 1, (relative, text)
            path.write_text(source.replace(text, replacement), encoding="utf-8")
        failed = {c["check_id"] for c in scan(copy)["results"]["failed_checks"]}
        assert failed == {p[3] for p in PLANTED}
