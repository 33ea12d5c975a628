"""Specification of training.pipeline: default features, and cross-validated performance."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import FEATURE_FIELDS, PROTECTED_FEATURES
from training.pipeline import default_features, logistic_regression, training_auc


class TestDefaultFeatures:
    def test_they_are_the_vocabulary_minus_protected_attributes_in_vocabulary_order(self) -> None:
        """Default features are FEATURE_FIELDS without PROTECTED_FEATURES, order preserved."""
        expected = tuple(f.name for f in FEATURE_FIELDS if f.name not in PROTECTED_FEATURES)
        assert default_features() == expected
        assert len(expected) == 17


class TestLogisticRegression:
    def test_the_fitted_pipeline_separates_good_from_bad_on_the_training_data(self, fitted: Any) -> None:
        """Training AUC is well above chance (about 0.82 on the German credit data)."""
        assert training_auc(fitted.pipeline, fitted.frame, fitted.features) == pytest.approx(0.819, abs=0.01)

    def test_categorical_features_ignore_unknown_categories(self) -> None:
        """The one-hot encoder is configured to ignore categories it has not seen."""
        pipeline = logistic_regression(default_features(), seed=42)
        encoder = pipeline.named_steps["preprocess"].transformers[1][1]
        assert encoder.handle_unknown == "ignore"
