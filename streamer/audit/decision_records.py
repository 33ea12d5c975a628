"""Reads one stored decision back from the audit table, for `streamer decisions` (reading needs SELECT on
decision_audit and decision_audit_ids: the owner, the worker role, or a reader role a DBA grants it to)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

# The column lists are written out, not formatted in (which bandit flags). By id through the ledger, whose
# decided_at picks the one partition to read.
_BY_DECISION = """
SELECT decision_id::text, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256::text, policy_version, reason_codes, decided_at, latency_ms, application_schema_version,
    application, features, protected_attributes, record_key_id
FROM decision_audit
WHERE decision_id = %(id)s AND decided_at = (SELECT decided_at FROM decision_audit_ids WHERE decision_id = %(id)s)
"""
_BY_APPLICATION = """
SELECT decision_id::text, application_id, outcome, probability_of_default, model_name, model_version,
    model_sha256::text, policy_version, reason_codes, decided_at, latency_ms, application_schema_version,
    application, features, protected_attributes, record_key_id
FROM decision_audit WHERE application_id = %(id)s ORDER BY decided_at DESC LIMIT 1
"""


@dataclass(frozen=True)
class StoredDecision:
    """An audit row. The record columns are None for a decision stored without its record."""

    decision_id: str
    application_id: str
    outcome: str
    probability_of_default: float
    model_name: str
    model_version: str
    model_sha256: str
    policy_version: str
    reason_codes: list[dict[str, str]]
    decided_at: datetime
    latency_ms: float
    application_schema_version: int | None
    application: dict[str, Any] | None
    features: dict[str, Any] | None
    protected_attributes: bytes | None
    record_key_id: str | None


class DecisionNotFound(LookupError):
    pass


def stored_decision(database_url: str, decision_id: str | None = None,
                    application_id: str | None = None) -> StoredDecision:
    """The decision with this id, or the latest decision of this application; DecisionNotFound if none."""
    statement, key = (_BY_DECISION, decision_id) if decision_id is not None else (_BY_APPLICATION, application_id)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        try:
            row = conn.execute(statement, {"id": key}).fetchone()
        except psycopg.errors.InvalidTextRepresentation:  # not a uuid
            row = None
    if row is None:
        what = f"decision {decision_id}" if decision_id is not None else f"a decision of application {application_id}"
        raise DecisionNotFound(f"no audit row for {what}")
    protected = row["protected_attributes"]
    return StoredDecision(**{**row, "protected_attributes": bytes(protected) if protected is not None else None})
