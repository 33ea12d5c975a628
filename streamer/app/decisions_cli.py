"""`streamer decisions show | reproduce | notice`: one stored decision, read back from the audit table.

Postgres and the model directory only, like `migrate` (no Faust app, no Kafka client: an import-linter
contract keeps them out). STREAMER_DATABASE_URL must be a role that may SELECT decision_audit and
decision_audit_ids; STREAMER_RECORD_KEYS must hold the key a row's protected attributes were sealed under to
show them or to reproduce the decision. Exit codes: 0 done (reproduce: it matches), 1 reproduce: it does not
match, 2 it cannot be done (no such decision, no record, no key, an unknown artifact or policy).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import orjson

from schemas.application import SCHEMA_VERSION
from schemas.application_fast import Application
from streamer.audit.decision_records import DecisionNotFound, StoredDecision, stored_decision
from streamer.config import Settings
from streamer.core.decisions import DecisionEncoder
from streamer.core.policy import DecisionPolicy
from streamer.core.records import PROTECTED, KeyRing, KeyRingError, Unreadable, joined
from streamer.core.reproduction import compare, principal_reasons
from streamer.core.validation import Rejection, parse_application
from streamer.model.onnx_scorer import ModelLoadError, OnnxScorer
from streamer.model.registry import RegistryError, artifact_by_sha256

CANNOT = 2

_which = [
    click.argument("decision_id", required=False),
    click.option("--application-id", help="The latest decision of this application instead."),
]


def _choice(command: Any) -> Any:
    for decorate in reversed(_which):
        command = decorate(command)
    return command


@click.group("decisions")
def decisions() -> None:
    """Show, reproduce or explain one stored decision (by DECISION_ID or --application-id)."""


@decisions.command()
@_choice
def show(decision_id: str | None, application_id: str | None) -> None:
    """The stored decision and its record; protected attributes only with their key."""
    settings = Settings()
    row = _row(settings, decision_id, application_id)
    shown: dict[str, Any] = {k: v for k, v in dataclasses.asdict(row).items() if k != "protected_attributes"}
    if row.protected_attributes is not None:
        keys = _keys(settings, required=False)
        try:
            shown["protected_attributes"] = orjson.loads(_open(keys, row)) if keys else _sealed(row)
        except Unreadable:
            shown["protected_attributes"] = _sealed(row)
    print(json.dumps(shown, indent=2, default=str))


@decisions.command()
@_choice
def reproduce(decision_id: str | None, application_id: str | None) -> None:
    """Re-score the stored application with the recorded artifact and policy; exit 1 if the result differs."""
    settings = Settings()
    row = _row(settings, decision_id, application_id)
    application = _application(settings, row)
    policy = DecisionPolicy()
    if row.policy_version != policy.version:
        _cannot(f"policy version {row.policy_version} is not available (this build has {policy.version})")
    try:
        entry = artifact_by_sha256(settings, row.model_sha256)
        scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    except (RegistryError, ModelLoadError) as exc:
        _cannot(f"the artifact that made the decision cannot be loaded: {exc}")
    # The scorer's own path (streamer/core/decisions.py), not a second copy of it: what is compared is what the
    # worker would publish for this application today.
    [decision] = DecisionEncoder(scorer.ref, scorer.feature_names, policy).encode(
        [application], [0.0], scorer.score([application]), datetime.now(UTC))
    reproduced = orjson.loads(decision.value)
    checks = compare((row.probability_of_default, row.outcome, [r["code"] for r in row.reason_codes]),
                     (reproduced["probability_of_default"], reproduced["outcome"],
                      [r["code"] for r in reproduced["reason_codes"]]))
    print(f"decision {row.decision_id} (application {row.application_id}), decided {row.decided_at.isoformat()}")
    print(f"  by {entry.name} v{entry.version} ({entry.artifact_id}, sha256 {entry.sha256}), "
          f"policy {row.policy_version}")
    for check in checks:
        print(f"  {check.name:<23} stored {check.stored:<28} reproduced {check.reproduced}  "
              f"{'match' if check.matches else 'MISMATCH'}")
    if all(check.matches for check in checks):
        print("reproduced: the decision matches")
        return
    print("NOT reproduced: the re-scored decision differs from the stored one")
    sys.exit(1)


@decisions.command()
@_choice
def notice(decision_id: str | None, application_id: str | None) -> None:
    """The statement of principal reasons for a decline (adverse action), from the recorded reason codes."""
    row = _row(Settings(), decision_id, application_id)
    print(f"Application {row.application_id}, decision {row.decision_id} of {row.decided_at.date().isoformat()}")
    print()
    print(principal_reasons(row.outcome, [r["description"] for r in row.reason_codes]))


def _row(settings: Settings, decision_id: str | None, application_id: str | None) -> StoredDecision:
    if (decision_id is None) == (application_id is None):
        _cannot("give either a DECISION_ID or --application-id")
    if decision_id is not None:
        try:
            decision_id = str(uuid.UUID(decision_id))
        except ValueError:
            _cannot(f"{decision_id!r} is not a decision id (a uuid)")
    try:
        return stored_decision(settings.database_url.get_secret_value(), decision_id, application_id)
    except DecisionNotFound as exc:
        _cannot(str(exc))


def _application(settings: Settings, row: StoredDecision) -> Application:
    """The application as the model saw it: the stored part and the protected attributes, opened, read by the
    scorer's own validation."""
    if row.application is None or row.protected_attributes is None:
        _cannot("this decision was audited without its record (no record key when it was made or audited)")
    if row.application_schema_version != SCHEMA_VERSION:
        _cannot(f"application schema version {row.application_schema_version} is not this build's {SCHEMA_VERSION}")
    keys = _keys(settings, required=True)
    try:
        protected = _open(keys, row)
    except Unreadable as exc:
        _cannot(f"the protected attributes cannot be opened: {exc}")
    parsed = parse_application(orjson.dumps(joined(row.application, protected)), settings.max_event_bytes)
    if isinstance(parsed, Rejection):
        _cannot(f"the stored application is not valid today: {parsed.reason}")
    return parsed


def _keys(settings: Settings, required: bool) -> KeyRing | None:
    try:
        keys = settings.record_key_ring()
    except KeyRingError as exc:
        _cannot(f"STREAMER_RECORD_KEYS: {exc}")
    if keys is None and required:
        _cannot("STREAMER_RECORD_KEYS is unset: the protected attributes cannot be opened")
    return keys


def _open(keys: KeyRing | None, row: StoredDecision) -> bytes:
    if keys is None or row.protected_attributes is None:
        raise Unreadable("no key")
    return keys.open(row.protected_attributes, PROTECTED, uuid.UUID(row.decision_id).bytes)


def _sealed(row: StoredDecision) -> str:
    return f"<encrypted, key {row.record_key_id}>"


def _cannot(message: str) -> NoReturn:
    click.echo(f"cannot: {message}", err=True)
    sys.exit(CANNOT)
