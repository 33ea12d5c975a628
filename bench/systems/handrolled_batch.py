"""Baseline 3: what a user would write instead of streamer — one confluent-kafka loop, batched ONNX, COPY.

Single thread: consume up to 1,000 records, validate each with pydantic, one ONNX call, build Decision
models, produce and flush, COPY the audit rows in one transaction, commit offsets. Same topics, model,
policy and audit table as streamer, so the work per event is the same.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime

import psycopg
from confluent_kafka import Consumer, Producer
from pydantic import ValidationError

from schemas import Decision, LoanApplication, decision_id_for
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy, adverse_reasons
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion

COLUMNS = ("decision_id, application_id, outcome, probability_of_default, model_name, model_version, model_sha256,"
           " policy_version, reason_codes, decided_at, latency_ms, source_topic, source_partition, source_offset")


def main() -> None:
    s = Settings()
    entry = champion(s.model_dir)
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    policy = DecisionPolicy()
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": s.scorer_group(),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000, "fetch.wait.max.ms": 10})
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap, "enable.idempotence": True, "linger.ms": 2})
    db = psycopg.connect(s.database_url.get_secret_value())
    consumer.subscribe([s.input_topic])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        batch = [m for m in consumer.consume(1000, 0.01) if m.error() is None]
        if not batch:
            continue
        valid, rows = [], []
        for m in batch:
            try:
                valid.append((m, LoanApplication.model_validate_json(m.value() or b"")))
            except ValidationError as exc:
                producer.produce(s.dlq_topic, key=m.key(), value=m.value(),
                                 headers=[("dlq.reason", str(exc.errors()[0]["type"]).encode())])
        if valid:
            scores = scorer.score([a for _, a in valid])
            now = datetime.now(UTC)
            for i, (m, a) in enumerate(valid):
                p = float(scores.probability_of_default[i])
                outcome = policy.outcome(p)
                decision = Decision(
                    schema_version=1, decision_id=decision_id_for(a.application_id, entry.name, entry.version),
                    application_id=a.application_id, outcome=outcome, probability_of_default=p, model=scorer.ref,
                    policy_version=policy.version,
                    reason_codes=adverse_reasons(outcome, scorer.feature_names, scores.contributions[i].tolist()),
                    decided_at=now, latency_ms=max(0.0, now.timestamp() * 1000 - m.timestamp()[1]),
                )
                producer.produce(s.decision_topic, key=a.application_id.encode(), value=decision.model_dump_json())
                rows.append((decision.decision_id, a.application_id, outcome.value, p, entry.name, entry.version,
                             entry.sha256, policy.version, json.dumps([r.model_dump() for r in decision.reason_codes]),
                             now, decision.latency_ms, m.topic(), m.partition(), m.offset()))
        producer.flush()
        copy_sql = f"COPY decision_audit ({COLUMNS}) FROM STDIN"
        with db.transaction(), db.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        consumer.commit(asynchronous=False)
    consumer.close()


if __name__ == "__main__":
    main()
