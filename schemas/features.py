"""The flat feature vocabulary shared by training and serving.

Model inputs are named after these fields; a model may declare any subset of them and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from schemas.application import LoanApplication

FeatureKind = Literal["numeric", "categorical"]
Section = Literal["loan", "applicant"]


@dataclass(frozen=True)
class FeatureField:
    """One model input, and where LoanApplication holds its value: `application.<section>.<attribute>`."""

    name: str
    kind: FeatureKind
    section: Section
    attribute: str
    note: str = ""  # how the value is encoded, where that is not plain

    @property
    def description(self) -> str:
        """`<section>.<attribute>`, plus the note, for people."""
        return f"{self.section}.{self.attribute}" + (f" ({self.note})" if self.note else "")


FEATURE_FIELDS: tuple[FeatureField, ...] = (
    FeatureField("loan_amount", "numeric", "loan", "amount"),
    FeatureField("loan_term_months", "numeric", "loan", "term_months"),
    FeatureField("loan_purpose", "categorical", "loan", "purpose"),
    FeatureField("checking_account", "categorical", "applicant", "checking_account"),
    FeatureField("credit_history", "categorical", "applicant", "credit_history"),
    FeatureField("savings", "categorical", "applicant", "savings"),
    FeatureField("employment_length", "categorical", "applicant", "employment_length"),
    FeatureField("instalment_rate", "numeric", "applicant", "instalment_rate"),
    FeatureField("other_debtors", "categorical", "applicant", "other_debtors"),
    FeatureField("years_at_residence", "numeric", "applicant", "years_at_residence"),
    FeatureField("property", "categorical", "applicant", "property"),
    FeatureField("age_years", "numeric", "applicant", "age_years"),
    FeatureField("other_instalment_plans", "categorical", "applicant", "other_instalment_plans"),
    FeatureField("housing", "categorical", "applicant", "housing"),
    FeatureField("existing_credits", "numeric", "applicant", "existing_credits"),
    FeatureField("job", "categorical", "applicant", "job"),
    FeatureField("dependents", "numeric", "applicant", "dependents"),
    FeatureField("has_telephone", "numeric", "applicant", "has_telephone", note="1 = yes"),
    FeatureField("foreign_worker", "numeric", "applicant", "foreign_worker", note="1 = yes"),
    FeatureField("personal_status", "categorical", "applicant", "personal_status"),
)

FEATURES_BY_NAME: dict[str, FeatureField] = {f.name: f for f in FEATURE_FIELDS}

# Protected attributes (sex/marital status, foreign-worker status, age) stay out of models by default.
PROTECTED_FEATURES: frozenset[str] = frozenset({"personal_status", "foreign_worker", "age_years"})

FeatureValue = float | str


def flatten(application: LoanApplication) -> dict[str, FeatureValue]:
    """One application as {feature name: value}; categories as their string values, flags as 0/1."""
    return {f.name: _plain(getattr(getattr(application, f.section), f.attribute)) for f in FEATURE_FIELDS}


def columns(applications: Sequence[LoanApplication], names: Sequence[str]) -> dict[str, list[FeatureValue]]:
    """Column-wise feature values for a batch, restricted to `names` (the inputs a model declares)."""
    rows = [flatten(a) for a in applications]
    return {name: [row[name] for row in rows] for name in names}


def _plain(value: object) -> FeatureValue:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"unexpected feature value type {type(value).__name__}")
