"""A re-scored decision is compared part by part; a stored decline reads as a statement of principal reasons."""

from __future__ import annotations

from streamer.core.reproduction import ECOA_NOTICE, compare, principal_reasons


class TestCompare:
    def test_a_probability_within_one_millionth_matches(self) -> None:
        checks = compare((0.4, "review", ["SAVINGS"]), (0.4 + 9e-7, "review", ["SAVINGS"]))
        assert all(c.matches for c in checks)

    def test_a_probability_further_off_does_not_match(self) -> None:
        [probability, outcome, reasons] = compare((0.4, "review", ["SAVINGS"]), (0.4 + 2e-6, "review", ["SAVINGS"]))
        assert not probability.matches and outcome.matches and reasons.matches

    def test_another_outcome_or_other_reasons_or_another_order_do_not_match(self) -> None:
        _, outcome, _ = compare((0.7, "decline", []), (0.7, "review", []))
        _, _, reasons = compare((0.7, "decline", ["A", "B"]), (0.7, "decline", ["B", "A"]))
        assert not outcome.matches and not reasons.matches


class TestPrincipalReasons:
    def test_a_decline_lists_its_reasons_in_order_in_plain_language_with_the_ecoa_notice(self) -> None:
        text = principal_reasons("decline", ["Insufficient savings or bonds", "Repayment term is long"])
        assert "Principal reason(s) for our decision:\n  1. Insufficient savings or bonds\n" \
               "  2. Repayment term is long" in text
        assert text.endswith(ECOA_NOTICE)

    def test_an_approval_says_no_adverse_action_was_taken(self) -> None:
        assert principal_reasons("approve", []) == "No adverse action was taken: the application was approved."

    def test_a_review_is_not_called_an_adverse_action_but_names_its_factors(self) -> None:
        text = principal_reasons("review", ["Status of existing checking account"])
        assert text.startswith("No adverse action has been taken yet")
        assert "  1. Status of existing checking account" in text
        assert ECOA_NOTICE not in text
