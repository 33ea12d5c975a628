"""Whether a decision re-scored from its stored record is the decision that was made, and the adverse-action
statement of a stored decision. Pure: the caller fetches the row, the model and the keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROBABILITY_TOLERANCE = 1e-6

# Equal Credit Opportunity Act notice (12 CFR 1002.9(b)(1)); the lender adds its name and its federal agency.
ECOA_NOTICE = (
    "The federal Equal Credit Opportunity Act prohibits creditors from discriminating against credit applicants "
    "on the basis of race, color, religion, national origin, sex, marital status, age (provided the applicant "
    "has the capacity to enter into a binding contract); because all or part of the applicant's income derives "
    "from any public assistance program; or because the applicant has in good faith exercised any right under "
    "the Consumer Credit Protection Act."
)


@dataclass(frozen=True)
class Check:
    """One part of a decision, as stored and as re-scored."""

    name: str
    stored: str
    reproduced: str
    matches: bool


def compare(
    stored: tuple[float, str, Sequence[str]], reproduced: tuple[float, str, Sequence[str]],
    tolerance: float = PROBABILITY_TOLERANCE,
) -> list[Check]:
    """Probability (within `tolerance`), outcome and reason codes (in order), each (probability, outcome, codes)."""
    (p0, outcome0, codes0), (p1, outcome1, codes1) = stored, reproduced
    return [
        Check("probability of default", f"{p0:.9f}", f"{p1:.9f}  (|difference| {abs(p0 - p1):.1e})",
              abs(p0 - p1) <= tolerance),
        Check("outcome", outcome0, outcome1, outcome0 == outcome1),
        Check("reason codes", ", ".join(codes0) or "(none)", ", ".join(codes1) or "(none)",
              list(codes0) == list(codes1)),
    ]


def principal_reasons(outcome: str, descriptions: Sequence[str]) -> str:
    """The statement of principal reasons for a stored decision, in plain language, from its reason codes."""
    if outcome == "approve":
        return "No adverse action was taken: the application was approved."
    if outcome == "review":
        lines = ["No adverse action has been taken yet: the application was referred to a credit officer for review.",
                 "", "Principal factor(s) that led to the referral:"]
    else:
        lines = ["We are unable to approve your application for credit at this time.", "",
                 "Principal reason(s) for our decision:"]
    lines += [f"  {i}. {text}" for i, text in enumerate(descriptions, 1)] or ["  (no reason was recorded)"]
    if outcome == "decline":
        lines += ["", ECOA_NOTICE]
    return "\n".join(lines)
