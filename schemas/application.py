"""LoanApplication v1: the event services publish to the input topic.

Categories follow the German credit data (UCI Statlog) under domain names. Validation is strict:
no type coercion, no NaN/Infinity, unknown enum values rejected. Unknown extra fields are ignored
(dropped, never stored or logged), so producers can add fields before consumers know them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

# Opaque identifiers: no spaces or '@', so a name or an email cannot pass as an id.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class Currency(StrEnum):
    """Currencies the shipped models are calibrated for."""

    EUR = "EUR"


class LoanPurpose(StrEnum):
    NEW_CAR = "new_car"
    USED_CAR = "used_car"
    FURNITURE_EQUIPMENT = "furniture_equipment"
    RADIO_TELEVISION = "radio_television"
    DOMESTIC_APPLIANCES = "domestic_appliances"
    REPAIRS = "repairs"
    EDUCATION = "education"
    RETRAINING = "retraining"
    BUSINESS = "business"
    OTHER = "other"


class CheckingAccount(StrEnum):
    OVERDRAWN = "overdrawn"  # balance < 0
    BELOW_200 = "below_200"  # 0 <= balance < 200
    AT_LEAST_200 = "at_least_200"  # >= 200 or salary paid in for at least a year
    NONE = "none"


class CreditHistory(StrEnum):
    NO_CREDITS_OR_ALL_PAID = "no_credits_or_all_paid"
    ALL_PAID_AT_THIS_BANK = "all_paid_at_this_bank"
    EXISTING_PAID_DULY = "existing_paid_duly"
    PAST_DELAYS = "past_delays"
    CRITICAL_ACCOUNT = "critical_account"


class Savings(StrEnum):
    BELOW_100 = "below_100"
    FROM_100_TO_500 = "100_to_500"
    FROM_500_TO_1000 = "500_to_1000"
    AT_LEAST_1000 = "at_least_1000"
    UNKNOWN_OR_NONE = "unknown_or_none"


class EmploymentLength(StrEnum):
    UNEMPLOYED = "unemployed"
    BELOW_1_YEAR = "below_1_year"
    FROM_1_TO_4_YEARS = "1_to_4_years"
    FROM_4_TO_7_YEARS = "4_to_7_years"
    AT_LEAST_7_YEARS = "at_least_7_years"


class OtherDebtors(StrEnum):
    NONE = "none"
    CO_APPLICANT = "co_applicant"
    GUARANTOR = "guarantor"


class Property(StrEnum):
    REAL_ESTATE = "real_estate"
    SAVINGS_AGREEMENT_OR_LIFE_INSURANCE = "savings_agreement_or_life_insurance"
    CAR_OR_OTHER = "car_or_other"
    UNKNOWN_OR_NONE = "unknown_or_none"


class OtherInstalmentPlans(StrEnum):
    BANK = "bank"
    STORES = "stores"
    NONE = "none"


class Housing(StrEnum):
    RENT = "rent"
    OWN = "own"
    FOR_FREE = "for_free"


class Job(StrEnum):
    UNSKILLED_NON_RESIDENT = "unskilled_non_resident"  # also unemployed
    UNSKILLED_RESIDENT = "unskilled_resident"
    SKILLED = "skilled"
    HIGHLY_QUALIFIED = "highly_qualified"  # management, self-employed, officer


class PersonalStatus(StrEnum):
    """Sex and marital status as the source data records them: a protected attribute."""

    MALE_DIVORCED_SEPARATED = "male_divorced_separated"
    FEMALE_DIVORCED_SEPARATED_MARRIED = "female_divorced_separated_married"
    MALE_SINGLE = "male_single"
    MALE_MARRIED_WIDOWED = "male_married_widowed"
    FEMALE_SINGLE = "female_single"


class Loan(BaseModel):
    """What is asked for."""

    model_config = _STRICT

    amount: Annotated[float, Field(gt=0, le=10_000_000, description="Principal in `currency` units.")]
    currency: Currency
    term_months: Annotated[int, Field(ge=1, le=480)]
    purpose: LoanPurpose


class Applicant(BaseModel):
    """Attributes of the applicant. No names, emails, phone numbers or national ids belong here."""

    model_config = _STRICT

    checking_account: CheckingAccount
    credit_history: CreditHistory
    savings: Savings
    employment_length: EmploymentLength
    instalment_rate: Annotated[
        int, Field(ge=1, le=4, description="Instalment as a share of disposable income, banded 1 (<20%) to 4.")
    ]
    other_debtors: OtherDebtors
    years_at_residence: Annotated[int, Field(ge=1, le=4, description="Banded 1 (<1 year) to 4 (>=7 years).")]
    property: Property
    age_years: Annotated[int, Field(ge=18, le=120)]
    other_instalment_plans: OtherInstalmentPlans
    housing: Housing
    existing_credits: Annotated[int, Field(ge=0, le=99, description="Credits already held at this bank.")]
    job: Job
    dependents: Annotated[int, Field(ge=0, le=99, description="People the applicant provides for.")]
    has_telephone: bool
    foreign_worker: bool
    personal_status: PersonalStatus


class LoanApplication(BaseModel):
    """A loan application event, schema version 1."""

    model_config = ConfigDict(
        strict=True,
        allow_inf_nan=False,
        extra="ignore",
        frozen=True,
        title="LoanApplication",
        json_schema_extra={"$id": "https://streamer.dev/schemas/loan-application.v1.json"},
    )

    schema_version: Literal[1]
    application_id: Identifier
    applicant_id: Annotated[Identifier, Field(description="Pseudonymous applicant key; never a name or email.")]
    submitted_at: Annotated[AwareDatetime, Field(description="RFC 3339 timestamp with offset.")]
    loan: Loan
    applicant: Applicant
