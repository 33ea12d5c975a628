"""Synthetic loan applications for the demo, `streamer produce` and tests: valid ones, and invalid ones
of several kinds, each invalid payload tagged with the rejection reason the worker must give it."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Category weights roughly follow the German credit data, so scores spread like real ones.
_CATEGORIES: dict[str, dict[str, int]] = {
    "purpose": {"radio_television": 28, "new_car": 23, "used_car": 10, "furniture_equipment": 18, "business": 10,
                "education": 5, "repairs": 2, "domestic_appliances": 1, "retraining": 1, "other": 1},
    "checking_account": {"none": 39, "overdrawn": 27, "below_200": 27, "at_least_200": 7},
    "credit_history": {"existing_paid_duly": 53, "critical_account": 29, "past_delays": 9,
                       "all_paid_at_this_bank": 5, "no_credits_or_all_paid": 4},
    "savings": {"below_100": 60, "unknown_or_none": 18, "100_to_500": 10, "500_to_1000": 7, "at_least_1000": 5},
    "employment_length": {"1_to_4_years": 34, "at_least_7_years": 25, "4_to_7_years": 17, "below_1_year": 17,
                          "unemployed": 7},
    "other_debtors": {"none": 91, "guarantor": 5, "co_applicant": 4},
    "property": {"car_or_other": 33, "real_estate": 28, "savings_agreement_or_life_insurance": 23,
                 "unknown_or_none": 16},
    "other_instalment_plans": {"none": 81, "bank": 14, "stores": 5},
    "housing": {"own": 71, "rent": 18, "for_free": 11},
    "job": {"skilled": 63, "unskilled_resident": 20, "highly_qualified": 15, "unskilled_non_resident": 2},
    "personal_status": {"male_single": 55, "female_divorced_separated_married": 31, "male_married_widowed": 9,
                        "male_divorced_separated": 5},
}

# How each kind of invalid payload is made, and the DLQ reason the worker must give it.
INVALID_KINDS: dict[str, str] = {
    "truncated_json": "invalid_json",
    "not_utf8": "invalid_json",
    "amount_as_string": "schema_violation",
    "unknown_enum": "schema_violation",
    "nan_amount": "schema_violation",
    "missing_field": "schema_violation",
    "negative_amount": "schema_violation",
    "wrong_schema_version": "unsupported_schema_version",
    "empty_value": "empty_value",
}


@dataclass(frozen=True)
class SamplePayload:
    key: bytes
    value: bytes
    expected_reason: str | None  # None: valid; else the DLQ reason it must get


class ApplicationFactory:
    """Deterministic for a given seed."""

    def __init__(self, seed: int = 7, run_id: str | None = None) -> None:
        self._rng = random.Random(seed)
        self._run = run_id or uuid.UUID(int=self._rng.getrandbits(128)).hex[:8]
        self._count = 0

    def valid(self) -> dict[str, Any]:
        rng, self._count = self._rng, self._count + 1
        pick = {field: self._choose(field) for field in _CATEGORIES}
        return {
            "schema_version": 1,
            "application_id": f"app-{self._run}-{self._count:08d}",
            "applicant_id": f"cust-{rng.getrandbits(40):010x}",
            "submitted_at": datetime.now(UTC).isoformat(),
            "loan": {
                "amount": round(rng.lognormvariate(7.8, 0.75), 2),
                "currency": "EUR",
                "term_months": rng.choice([6, 12, 12, 18, 24, 24, 36, 48, 60]),
                "purpose": pick["purpose"],
            },
            "applicant": {
                **{k: v for k, v in pick.items() if k != "purpose"},
                "instalment_rate": rng.randint(1, 4),
                "years_at_residence": rng.randint(1, 4),
                "age_years": min(75, 19 + int(rng.expovariate(1 / 16))),
                "existing_credits": rng.choice([1, 1, 1, 2, 2, 3]),
                "dependents": rng.choice([1, 1, 1, 1, 1, 2]),
                "has_telephone": rng.random() < 0.4,
                "foreign_worker": rng.random() < 0.96,
            },
        }

    def invalid(self, kind: str) -> bytes:
        doc = self.valid()
        if kind == "truncated_json":
            return _encode(doc)[:57]
        if kind == "not_utf8":
            return _encode(doc).replace(b'"EUR"', b'"\xff\xfeUR"')
        if kind == "empty_value":
            return b""
        _break(doc, kind)
        return _encode(doc)  # writes NaN as the bare literal, as lax producers do

    def mixed(self, count: int, invalid_every: int = 100) -> Iterator[SamplePayload]:
        """`count` payloads; every `invalid_every`-th one invalid, cycling through the invalid kinds."""
        kinds = list(INVALID_KINDS)
        for i in range(1, count + 1):
            if invalid_every and i % invalid_every == 0:
                kind = kinds[(i // invalid_every - 1) % len(kinds)]
                self._count += 1
                yield SamplePayload(f"bad-{self._run}-{i}".encode(), self.invalid(kind), INVALID_KINDS[kind])
            else:
                doc = self.valid()
                yield SamplePayload(doc["application_id"].encode(), _encode(doc), None)

    def _choose(self, field: str) -> str:
        options = _CATEGORIES[field]
        return self._rng.choices(list(options), weights=list(options.values()))[0]


def _break(doc: dict[str, Any], kind: str) -> None:
    loan, applicant = doc["loan"], doc["applicant"]
    if kind == "amount_as_string":
        loan["amount"] = str(loan["amount"])
    elif kind == "unknown_enum":
        applicant["housing"] = "castle"
    elif kind == "missing_field":
        del applicant["credit_history"]
    elif kind == "negative_amount":
        loan["amount"] = -abs(loan["amount"])
    elif kind == "wrong_schema_version":
        doc["schema_version"] = 2
    elif kind == "nan_amount":
        loan["amount"] = float("nan")
    else:
        raise ValueError(f"unknown invalid kind {kind!r}")


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
