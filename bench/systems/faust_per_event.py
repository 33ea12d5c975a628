"""Baseline 2: a default Faust agent, one event at a time, with the same ONNX model.

Per event: validate with pydantic, one ONNX call, send the decision through Faust's producer, INSERT the
audit row. Faust's defaults throughout, except a 6 s session timeout so the group join against Tansu
takes ~3 s instead of ~23 s (its 1.5 s fetch max-wait is hard-coded and stays).
Run: faust -A bench.systems.faust_per_event worker -l warn
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import faust
import psycopg
from pydantic import ValidationError

from schemas import Decision, LoanApplication, decision_id_for
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy, adverse_reasons
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion

settings = Settings()
entry = champion(settings.model_dir)
scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
policy = DecisionPolicy()

app = faust.App(f"{settings.app_id}-scorer", broker=f"kafka://{settings.kafka_bootstrap}", web_port=settings.web_port,
                broker_session_timeout=6.0, datadir=str(settings.data_dir), value_serializer="raw")
applications = app.topic(settings.input_topic, value_type=bytes, value_serializer="raw")
decisions = app.topic(settings.decision_topic, value_serializer="raw")
dead_letters = app.topic(settings.dlq_topic, value_serializer="raw")
INSERT = ("INSERT INTO decision_audit (decision_id, application_id, outcome, probability_of_default, model_name,"
          " model_version, model_sha256, policy_version, reason_codes, decided_at, latency_ms, source_topic,"
          " source_partition, source_offset) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
          " ON CONFLICT DO NOTHING")


@app.agent(applications)
async def score(stream: faust.StreamT[bytes]) -> None:
    db = await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True)
    async for event in stream.events():
        try:
            application = LoanApplication.model_validate_json(event.value)
        except ValidationError:
            await dead_letters.send(key=event.key, value=event.value)
            continue
        scores = scorer.score([application])
        p = float(scores.probability_of_default[0])
        outcome = policy.outcome(p)
        now = datetime.now(UTC)
        decision = Decision(
            schema_version=1, decision_id=decision_id_for(application.application_id, entry.name, entry.version),
            application_id=application.application_id, outcome=outcome, probability_of_default=p, model=scorer.ref,
            policy_version=policy.version,
            reason_codes=adverse_reasons(outcome, scorer.feature_names, scores.contributions[0].tolist()),
            decided_at=now, latency_ms=max(0.0, now.timestamp() * 1000 - event.message.timestamp * 1000),
        )
        await decisions.send(key=application.application_id.encode(), value=decision.model_dump_json().encode())
        await db.execute(INSERT, (decision.decision_id, application.application_id, outcome.value, p, entry.name,
                                  entry.version, entry.sha256, policy.version,
                                  json.dumps([r.model_dump() for r in decision.reason_codes]), now,
                                  decision.latency_ms, event.message.topic, event.message.partition,
                                  event.message.offset))
