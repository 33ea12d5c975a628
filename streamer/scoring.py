"""Validated applications + model scores -> Decision v1 events. Pure: no Kafka, no onnxruntime.

The hot path encodes decisions straight to JSON (orjson) without building pydantic models; tests pin
the bytes to the `schemas.Decision` model, so the contract is still the model's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from schemas.application import LoanApplication
from schemas.decision import DECISION_ID_NAMESPACE, SCHEMA_VERSION_DECISION, ModelRef, Outcome
from streamer.policy import OUTCOMES, DecisionPolicy, reason_indices
from streamer.reasons import reason_for


@dataclass(frozen=True)
class Scores:
    """What a model returns for a batch."""

    probability_of_default: npt.NDArray[np.float32]  # [N]
    contributions: npt.NDArray[np.float32]  # [N, K], columns follow the model's feature names


@dataclass(frozen=True)
class EncodedDecision:
    application_id: str
    decision_id: str
    outcome: Outcome
    latency_ms: float
    value: bytes  # Decision v1 as JSON


class DecisionEncoder:
    """Decisions for one model and policy; precomputes everything that does not vary per row."""

    def __init__(self, model: ModelRef, feature_names: Sequence[str], policy: DecisionPolicy) -> None:
        self.model = model
        self._policy = policy
        self._model_json = model.model_dump()
        self._reasons = [reason_for(name).model_dump() for name in feature_names]
        self._id_salt = f"\x1f{model.name}\x1f{model.version}".encode()

    def encode(
        self,
        applications: Sequence[LoanApplication],
        received_ms: Sequence[float],
        scores: Scores,
        now: datetime,
    ) -> list[EncodedDecision]:
        """One decision per application; `received_ms` is each record's Kafka timestamp (latency origin).

        Rows whose probability is not a finite number are left out; the caller dead-letters them.
        """
        probabilities = np.clip(scores.probability_of_default.astype(np.float64), 0.0, 1.0)
        outcomes = self._policy.outcome_indices(probabilities)
        reasons = reason_indices(scores.contributions)
        now_ms = now.timestamp() * 1000.0
        decided_at = now.isoformat().replace("+00:00", "Z")
        decisions = []
        for i, application in enumerate(applications):
            probability = float(probabilities[i])
            if math.isnan(probability):  # the model failed on this row
                continue
            outcome = OUTCOMES[outcomes[i]]
            latency = max(0.0, now_ms - received_ms[i])
            decision_id = self._decision_id(application.application_id)
            document: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION_DECISION,
                "decision_id": decision_id,
                "application_id": application.application_id,
                "outcome": outcome.value,
                "probability_of_default": probability,
                "model": self._model_json,
                "policy_version": self._policy.version,
                "reason_codes": [] if outcome is Outcome.APPROVE else [self._reasons[j] for j in reasons[i]],
                "decided_at": decided_at,
                "latency_ms": latency,
            }
            decisions.append(
                EncodedDecision(application.application_id, decision_id, outcome, latency, orjson.dumps(document))
            )
        return decisions

    def _decision_id(self, application_id: str) -> str:
        """schemas.decision_id_for, inlined: uuid5 without building a UUID object per row."""
        digest = bytearray(hashlib.sha1(DECISION_ID_NAMESPACE.bytes + application_id.encode() + self._id_salt,
                                        usedforsecurity=False).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
