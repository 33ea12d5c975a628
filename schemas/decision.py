"""Decision v1: the event emitted to the decision topic, keyed by application id.

`decision_id` is derived from the application id and the model version, so reprocessing the same
application with the same model yields the same id; consumers dedupe on it.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.application import Identifier

# Fixed namespace for uuid5 decision ids; changing it would change every id.
DECISION_ID_NAMESPACE = uuid.UUID("6f1c2a3e-5b7d-4c8e-9a0f-2d4b6e8a1c3f")
MAX_REASON_CODES = 4
# Printable labels only: audit columns are Postgres text, which refuses NUL and control characters.
Label = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$")]
Text = Annotated[str, Field(pattern=r"^[^\x00-\x1f]{0,200}$")]
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
SCHEMA_VERSION_DECISION: Literal[1] = 1


class Outcome(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class ReasonCode(BaseModel):
    """An adverse-action reason: which input pushed the risk up, in words an applicant can read."""

    model_config = ConfigDict(strict=True, frozen=True)

    code: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")]
    feature: Label
    description: Text


class ModelRef(BaseModel):
    """The exact artifact that produced a decision."""

    model_config = ConfigDict(strict=True, frozen=True, protected_namespaces=())

    name: Label
    version: Label
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Decision(BaseModel):
    """A scoring decision, schema version 1."""

    model_config = ConfigDict(
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        title="Decision",
        protected_namespaces=(),
        json_schema_extra={"$id": "https://streamer.dev/schemas/decision.v1.json"},
    )

    schema_version: Literal[1]
    decision_id: Annotated[str, Field(pattern=UUID_PATTERN, description="uuid5 of application id and model.")]
    application_id: Identifier
    outcome: Outcome
    probability_of_default: Annotated[float, Field(ge=0.0, le=1.0)]
    model: ModelRef
    policy_version: Label
    reason_codes: Annotated[list[ReasonCode], Field(max_length=MAX_REASON_CODES)]
    decided_at: AwareDatetime
    latency_ms: Annotated[
        float, Field(ge=0.0, description="From the application's Kafka timestamp to the decision.")
    ]


def decision_id_for(application_id: str, model_name: str, model_version: str) -> str:
    """Deterministic id: the same application scored by the same model always gets the same id."""
    return str(uuid.uuid5(DECISION_ID_NAMESPACE, f"{application_id}\x1f{model_name}\x1f{model_version}"))
