"""Baseline 1, seeds-style: per event, scikit-learn `predict_proba` on a one-row DataFrame (how REST
scorers do it) and a per-row INSERT in autocommit, with a plain confluent-kafka consumer and producer."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
from confluent_kafka import Consumer, Producer
from pydantic import ValidationError

from schemas import Decision, LoanApplication, decision_id_for, flatten
from schemas.decision import ModelRef
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy
from training.data import TARGET, load
from training.pipeline import default_features, fit, logistic_regression

DATA = Path(__file__).resolve().parents[2] / "training" / "data" / "germancredit.csv"
INSERT = ("INSERT INTO decision_audit (decision_id, application_id, outcome, probability_of_default, model_name,"
          " model_version, model_sha256, policy_version, reason_codes, decided_at, latency_ms, source_topic,"
          " source_partition, source_offset) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
          " ON CONFLICT DO NOTHING")


def main() -> None:
    s = Settings()
    frame = load(DATA)
    features = default_features()
    model = logistic_regression(features, 42)
    fit(model, frame, features)
    assert TARGET in frame
    policy = DecisionPolicy()
    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": s.scorer_group(),
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "fetch.wait.max.ms": 10})
    producer = Producer({"bootstrap.servers": s.kafka_bootstrap, "linger.ms": 0})
    db = psycopg.connect(s.database_url.get_secret_value(), autocommit=True)
    consumer.subscribe([s.input_topic])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        m = consumer.poll(0.1)
        if m is None or m.error():
            continue
        try:
            application = LoanApplication.model_validate_json(m.value() or b"")
        except ValidationError:
            producer.produce(s.dlq_topic, key=m.key(), value=m.value())
            continue
        row = pd.DataFrame([flatten(application)])[list(features)]
        p = float(model.predict_proba(row)[0, 1])
        outcome = policy.outcome(p)
        now = datetime.now(UTC)
        decision = Decision(
            schema_version=1, decision_id=decision_id_for(application.application_id, "sklearn", "1"),
            application_id=application.application_id, outcome=outcome, probability_of_default=p,
            model=ModelRef(name="sklearn", version="1", sha256="0" * 64), policy_version=policy.version,
            reason_codes=[], decided_at=now, latency_ms=max(0.0, now.timestamp() * 1000 - m.timestamp()[1]),
        )
        producer.produce(s.decision_topic, key=application.application_id.encode(), value=decision.model_dump_json())
        producer.poll(0)
        db.execute(INSERT, (decision.decision_id, application.application_id, outcome.value, p, "sklearn", "1",
                            "0" * 64, policy.version, json.dumps([]), now, decision.latency_ms, m.topic(),
                            m.partition(), m.offset()))
    producer.flush()
    consumer.close()


if __name__ == "__main__":
    main()
