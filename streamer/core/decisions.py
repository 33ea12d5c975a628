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
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from schemas.application_fast import Application
from schemas.decision import DECISION_ID_NAMESPACE, SCHEMA_VERSION_DECISION, ModelRef, Outcome
from streamer.core.policy import OUTCOMES, DecisionPolicy, reason_indices
from streamer.core.reasons import reason_for


@dataclass(frozen=True)
class Scores:
    """What a model returns for a batch."""

    probability_of_default: npt.NDArray[np.float32]  # [N]
    contributions: npt.NDArray[np.float32]  # [N, K], columns follow the model's feature names


class EncodedDecision(NamedTuple):
    """One per decision on the hot path, hence a NamedTuple (cheaper to make than a frozen dataclass)."""

    application_id: str
    decision_id: str
    outcome: Outcome
    latency_ms: float
    value: bytes  # Decision v1 as JSON
    decided_at: str  # as in `value`, RFC 3339 (the CloudEvents ce_time)
    row: int  # the application's index in the batch encoded


class DecisionEncoder:
    """Decisions for one model and policy; precomputes everything that does not vary per row."""

    def __init__(self, model: ModelRef, feature_names: Sequence[str], policy: DecisionPolicy) -> None:
        self.model = model
        self._policy = policy
        self._model_json = model.model_dump()
        self._reasons = [reason_for(name).model_dump() for name in feature_names]
        self._id_salt = f"\x1f{model.name}\x1f{model.version}".encode()
        self._id_namespace = DECISION_ID_NAMESPACE.bytes  # a property that builds new bytes on every access
        self._outcome_values = [outcome.value for outcome in OUTCOMES]

    def encode(
        self,
        applications: Sequence[Application],
        received_ms: Sequence[float],
        scores: Scores,
        now: datetime,
    ) -> list[EncodedDecision]:
        """One decision per application; `received_ms` is each record's Kafka timestamp (latency origin).

        Rows whose probability is not a finite number are left out; the caller dead-letters them.
        """
        probabilities = np.clip(scores.probability_of_default.astype(np.float64), 0.0, 1.0)
        outcome_indices = self._policy.outcome_indices(probabilities)
        outcomes = outcome_indices.tolist()
        # Reasons only for the rows that get them (not approvals): most rows are approved.
        with_reasons = np.flatnonzero(outcome_indices != OUTCOMES.index(Outcome.APPROVE))
        reasons: list[list[int]] = [[] for _ in outcomes]
        for row, indices in zip(with_reasons.tolist(), reason_indices(scores.contributions[with_reasons]), strict=True):
            reasons[row] = indices
        now_ms = now.timestamp() * 1000.0
        decided_at = now.isoformat().replace("+00:00", "Z")
        model, policy_version, all_reasons = self._model_json, self._policy.version, self._reasons
        decisions = []
        # Python lists, not numpy rows: this loop runs once per application.
        for row, (application, probability, outcome_index, row_reasons, received) in enumerate(zip(
            applications, probabilities.tolist(), outcomes, reasons, received_ms, strict=True
        )):
            if math.isnan(probability):  # the model failed on this row
                continue
            outcome = OUTCOMES[outcome_index]
            application_id = application.application_id
            latency = max(0.0, now_ms - received)
            decision_id = self._decision_id(application_id)
            document: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION_DECISION,
                "decision_id": decision_id,
                "application_id": application_id,
                "outcome": self._outcome_values[outcome_index],
                "probability_of_default": probability,
                "model": model,
                "policy_version": policy_version,
                "reason_codes": [all_reasons[j] for j in row_reasons],
                "decided_at": decided_at,
                "latency_ms": latency,
            }
            decisions.append(
                EncodedDecision(application_id, decision_id, outcome, latency, orjson.dumps(document), decided_at, row)
            )
        return decisions

    def _decision_id(self, application_id: str) -> str:
        """schemas.decision_id_for, inlined: uuid5 without building a UUID object per row."""
        digest = bytearray(hashlib.sha1(self._id_namespace + application_id.encode() + self._id_salt,
                                        usedforsecurity=False).digest()[:16])
        digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
        digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = digest.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
