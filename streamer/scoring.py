"""Validated applications + model scores -> Decision events. Pure: no Kafka, no onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from schemas.application import LoanApplication
from schemas.decision import SCHEMA_VERSION_DECISION, Decision, ModelRef, decision_id_for
from streamer.policy import DecisionPolicy, adverse_reasons


@dataclass(frozen=True)
class Scores:
    """What a model returns for a batch."""

    probability_of_default: npt.NDArray[np.float32]  # [N]
    contributions: npt.NDArray[np.float32]  # [N, K], columns follow the model's feature names


def decide(
    applications: Sequence[LoanApplication],
    received_at: Sequence[datetime],
    scores: Scores,
    feature_names: Sequence[str],
    model: ModelRef,
    policy: DecisionPolicy,
    now: datetime,
) -> list[Decision]:
    """One decision per application; `received_at` is each record's Kafka timestamp (latency origin)."""
    decisions = []
    for i, application in enumerate(applications):
        probability = min(1.0, max(0.0, float(scores.probability_of_default[i])))
        outcome = policy.outcome(probability)
        decisions.append(
            Decision(
                schema_version=SCHEMA_VERSION_DECISION,
                decision_id=decision_id_for(application.application_id, model.name, model.version),
                application_id=application.application_id,
                outcome=outcome,
                probability_of_default=probability,
                model=model,
                policy_version=policy.version,
                reason_codes=adverse_reasons(outcome, feature_names, scores.contributions[i].tolist()),
                decided_at=now,
                latency_ms=max(0.0, (now - received_at[i]).total_seconds() * 1000.0),
            )
        )
    return decisions
