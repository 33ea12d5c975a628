"""Human-readable adverse-action reasons, one per model feature."""

from __future__ import annotations

from schemas.decision import ReasonCode

_REASONS: dict[str, tuple[str, str]] = {
    "loan_amount": ("LOAN_AMOUNT", "Amount requested is high relative to comparable approved loans"),
    "loan_term_months": ("LOAN_TERM", "Repayment term is long"),
    "loan_purpose": ("LOAN_PURPOSE", "Purpose of the loan carries higher observed risk"),
    "checking_account": ("CHECKING_ACCOUNT", "Status of existing checking account"),
    "credit_history": ("CREDIT_HISTORY", "Credit history, including past delays or critical accounts"),
    "savings": ("SAVINGS", "Insufficient savings or bonds"),
    "employment_length": ("EMPLOYMENT_LENGTH", "Length of current employment"),
    "instalment_rate": ("INSTALMENT_RATE", "Instalments are a high share of disposable income"),
    "other_debtors": ("OTHER_DEBTORS", "No co-applicant or guarantor"),
    "years_at_residence": ("RESIDENCE_LENGTH", "Length of time at present residence"),
    "property": ("PROPERTY", "Insufficient property or collateral"),
    "age_years": ("AGE", "Age of applicant"),
    "other_instalment_plans": ("OTHER_INSTALMENT_PLANS", "Other instalment plans outstanding"),
    "housing": ("HOUSING", "Housing situation"),
    "existing_credits": ("EXISTING_CREDITS", "Number of existing credits at this bank"),
    "job": ("JOB", "Type of employment"),
    "dependents": ("DEPENDENTS", "Number of dependents"),
    "has_telephone": ("TELEPHONE", "No telephone registered"),
    "foreign_worker": ("FOREIGN_WORKER", "Foreign-worker status"),
    "personal_status": ("PERSONAL_STATUS", "Personal status"),
}


def reason_for(feature: str) -> ReasonCode:
    code, description = _REASONS.get(feature, (feature.upper()[:40], f"Value of {feature}"))
    return ReasonCode(code=code, feature=feature, description=description)
