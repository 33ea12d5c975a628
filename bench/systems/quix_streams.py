"""Baseline 4: Quix Streams as its users write it, one message at a time, with the same ONNX model.

A `quixstreams.Application` and a StreamingDataFrame: per message, validate with pydantic, one ONNX call,
the same policy; decisions and dead letters go out with `to_topic`, the audit rows through Quix's own
`PostgreSQLSink` into the same `decision_audit` table. Quix's defaults otherwise: at-least-once
(`processing_guarantee`), a checkpoint every 5 s, at which the sink writes its batch.
Runs in its own venv (requirements/quix.txt; see Makefile), where `-m` from the repo's root puts
`schemas` and `streamer` on the path without installing them.
Run: .venv/quix/bin/python -m bench.systems.quix_streams
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg2.extensions import parse_dsn
from pydantic import ValidationError
from quixstreams import Application, message_context
from quixstreams.sinks.community.postgresql import PostgreSQLSink

from schemas import Decision, LoanApplication, decision_id_for
from streamer.core.policy import DecisionPolicy, adverse_reasons
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion

env = os.environ  # the bench sets the worker's STREAMER_* variables; streamer.config needs the project's venv
entry = champion(Path(env["STREAMER_MODEL_DIR"]))
scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
policy = DecisionPolicy()


def validate(value: bytes) -> LoanApplication | bytes:
    """The application, or its bytes as they came, for the dead-letter topic."""
    try:
        return LoanApplication.model_validate_json(value)
    except ValidationError:
        return value


def decide(application: LoanApplication, key: Any, timestamp: int, headers: Any) -> dict[str, Any]:
    """One ONNX call and the policy: the Decision v1 event as a JSON-ready dict."""
    scores = scorer.score([application])
    p = float(scores.probability_of_default[0])
    outcome = policy.outcome(p)
    now = datetime.now(UTC)
    decision = Decision(
        schema_version=1, decision_id=decision_id_for(application.application_id, entry.name, entry.version),
        application_id=application.application_id, outcome=outcome, probability_of_default=p, model=scorer.ref,
        policy_version=policy.version,
        reason_codes=adverse_reasons(outcome, scorer.feature_names, scores.contributions[0].tolist()),
        decided_at=now, latency_ms=max(0.0, now.timestamp() * 1000 - timestamp),
    )
    return decision.model_dump(mode="json")


def audit_row(decision: dict[str, Any]) -> dict[str, Any]:
    """The `decision_audit` columns; the sink adapts the list of reason codes to jsonb."""
    source = message_context()
    model = decision["model"]
    return {"decision_id": decision["decision_id"], "application_id": decision["application_id"],
            "outcome": decision["outcome"], "probability_of_default": decision["probability_of_default"],
            "model_name": model["name"], "model_version": model["version"], "model_sha256": model["sha256"],
            "policy_version": decision["policy_version"], "reason_codes": decision["reason_codes"],
            "decided_at": decision["decided_at"], "latency_ms": decision["latency_ms"],
            "source_topic": source.topic, "source_partition": source.partition, "source_offset": source.offset}


def now_ms(*_: Any) -> int:
    """Quix stamps an output record with its input's timestamp; the bench times decisions by theirs."""
    return time.time_ns() // 1_000_000


def audit_sink() -> PostgreSQLSink:
    """Into the migrated `decision_audit` table as it is: no schema changes, no `__key`/`timestamp` columns."""
    db = parse_dsn(env["STREAMER_DATABASE_URL"])
    return PostgreSQLSink(host=db.get("host", "localhost"), port=int(db.get("port", 5432)), dbname=db["dbname"],
                          user=db.get("user", ""), password=db.get("password", ""), table_name="decision_audit",
                          schema_auto_update=False, include_metadata=False)


def main() -> None:
    app = Application(broker_address=env["STREAMER_KAFKA_BOOTSTRAP"], consumer_group=f"{env['STREAMER_APP_ID']}-scorer",
                      auto_offset_reset="earliest", state_dir=env["STREAMER_DATA_DIR"])
    applications = app.topic(env["STREAMER_INPUT_TOPIC"], key_deserializer="bytes", value_deserializer="bytes")
    decisions = app.topic(env["STREAMER_DECISION_TOPIC"], key_serializer="str", value_serializer="json")
    dead_letters = app.topic(env["STREAMER_DLQ_TOPIC"], key_serializer="bytes", value_serializer="bytes")

    checked = app.dataframe(applications).apply(validate)
    checked.filter(lambda v: isinstance(v, bytes)).to_topic(dead_letters)
    decided = checked.filter(lambda v: isinstance(v, LoanApplication)).apply(decide, metadata=True)
    decided = decided.set_timestamp(now_ms)
    decided.to_topic(decisions, key=lambda d: d["application_id"])
    decided.apply(audit_row).sink(audit_sink())
    app.run()


if __name__ == "__main__":
    main()
