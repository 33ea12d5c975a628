"""Specification of the model card and `python -m training evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.__main__ import main
from training.data import DEFAULT_DATA

FAIRNESS_HEADER = "| Attribute | Group | Applicants | Default rate | Approval rate | AUC | AIR | Four-fifths |"


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic model trained with personal_status as an input (quick CV), card included."""
    out = tmp_path_factory.mktemp("protected")
    assert main(["train", "--out", str(out), "--include-protected", "personal_status", "--cv-repeats", "1"]) == 0
    return out


class TestDefaultCard:
    def test_it_has_the_fairness_table_with_every_group_and_the_four_fifths_verdicts(self, retrained: Path) -> None:
        """Sex, age band and foreign-worker groups each have a row with approval rate, AUC and AIR."""
        card = (retrained / "german-credit-logreg-1.md").read_text()
        assert "## Fairness" in card and FAIRNESS_HEADER in card
        for group in (
            "| sex | female |",
            "| sex | male |",
            "| age band | under 25 |",
            "| age band | 25 and over |",
            "| foreign worker | yes |",
            "| foreign worker | no (small) |",
        ):
            assert group in card, group
        assert "Four-fifths" in card and "adverse-impact ratio" in card.lower()

    def test_it_states_that_protected_attributes_are_excluded_and_carries_no_warning(self, retrained: Path) -> None:
        """By default the summary says the protected attributes are excluded; there is no warning banner."""
        card = (retrained / "german-credit-logreg-1.md").read_text()
        assert "excluded: age_years, foreign_worker, personal_status" in card
        assert "WARNING" not in card

    def test_it_reports_metrics_with_confidence_intervals_and_links_its_plots(self, retrained: Path) -> None:
        """AUC, Gini, KS and Brier rows carry a 95% CI; the three PNGs exist and are linked."""
        card = (retrained / "german-credit-logreg-1.md").read_text()
        for metric in ("| AUC |", "| Gini |", "| KS |", "| Brier score |"):
            assert metric in card
        assert "95% CI" in card and "## Intended use" in card and "## Limitations" in card
        for plot in ("roc", "calibration", "scores"):
            name = f"german-credit-logreg-1-{plot}.png"
            assert f"]({name})" in card
            assert (retrained / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_its_evaluation_json_agrees_with_the_registry(self, retrained: Path) -> None:
        """The evaluation JSON's fold-mean AUC is the registry's cv_auc_mean."""
        evaluation = json.loads((retrained / "german-credit-logreg-1-evaluation.json").read_text())
        registry = json.loads((retrained / "registry.json").read_text())
        metrics = registry["models"]["german-credit-logreg-1"]["metrics"]
        assert evaluation["metrics"]["auc"]["fold_mean"] == pytest.approx(metrics["cv_auc_mean"], abs=1e-6)
        assert {r["attribute"] for r in evaluation["fairness"]} == {"sex", "age band", "foreign worker"}


class TestProtectedAttributeIncluded:
    def test_the_card_says_so_loudly_at_the_top(self, protected: Path) -> None:
        """The line after the title is a bold warning naming personal_status."""
        lines = (protected / "german-credit-logreg-1.md").read_text().splitlines()
        banner = next(line for line in lines[1:] if line.strip())
        assert banner.startswith("> **WARNING: THIS MODEL USES PROTECTED ATTRIBUTES AS INPUTS: `personal_status`")

    def test_the_sidecar_and_registry_record_it(self, protected: Path) -> None:
        """personal_status is an input, and both the sidecar and the registry list it as protected."""
        sidecar = json.loads((protected / "german-credit-logreg-1.json").read_text())
        registry = json.loads((protected / "registry.json").read_text())
        assert "personal_status" in sidecar["feature_names"]
        assert sidecar["protected_features"] == ["personal_status"]
        assert registry["models"]["german-credit-logreg-1"]["protected_features"] == ["personal_status"]

    def test_only_protected_attributes_can_be_included(self, tmp_path: Path) -> None:
        """--include-protected accepts only the protected attributes."""
        with pytest.raises(SystemExit):
            main(["train", "--out", str(tmp_path), "--include-protected", "loan_amount"])


class TestEvaluate:
    def test_a_model_family_is_cross_validated_and_written_as_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`evaluate gbm` prints metrics, calibration, the policy confusion and fairness, and writes them as JSON."""
        destination = tmp_path / "gbm.json"
        assert main(["evaluate", "gbm", "--cv-splits", "3", "--cv-repeats", "1", "--json", str(destination)]) == 0
        printed = capsys.readouterr().out
        for part in ("AUC", "Gini", "KS", "Brier score", "calibration", "confusion at the policy", "fairness"):
            assert part in printed, part
        result = json.loads(destination.read_text())
        assert set(result) >= {"metrics", "calibration", "confusion_at_policy", "fairness", "policy_thresholds"}
        assert result["policy_thresholds"] == {"approve_below": 0.3, "decline_at": 0.6}
        confusion = result["confusion_at_policy"]
        assert sum(confusion["default"].values()) == 300 and sum(confusion["no_default"].values()) == 700
        assert 0.7 < result["metrics"]["auc"]["value"] < 0.85

    def test_an_artifact_on_its_own_training_data_is_flagged_in_sample(
        self, retrained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`evaluate german-credit-logreg-1` scores the data with the ONNX graph: its AUC is the training AUC,
        and the report warns that the estimate is in-sample."""
        destination = tmp_path / "artifact.json"
        argv = ["evaluate", "german-credit-logreg-1", "--models", str(retrained), "--data", str(DEFAULT_DATA)]
        assert main([*argv, "--json", str(destination)]) == 0
        assert "IN-SAMPLE" in capsys.readouterr().out
        result = json.loads(destination.read_text())
        registry = json.loads((retrained / "registry.json").read_text())
        train_auc = registry["models"]["german-credit-logreg-1"]["metrics"]["train_auc"]
        assert result["metrics"]["auc"]["value"] == pytest.approx(train_auc, abs=1e-5)

    def test_an_unknown_model_or_artifact_fails_with_a_message(
        self, retrained: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A name that is neither a family nor a registered artifact exits 1."""
        assert main(["evaluate", "german-credit-svm-1", "--models", str(retrained)]) == 1
        assert "no registered model" in capsys.readouterr().err
