"""deploy/pip_audit_gate.py: a finding fails `make lint`; an unreachable vulnerability service only skips."""

from __future__ import annotations

from tests.deploy.conftest import load_script

gate = load_script("deploy/pip_audit_gate.py")


class TestJudgeReport:
    def test_a_known_vulnerability_fails(self) -> None:
        report = {"dependencies": [
            {"name": "numpy", "version": "2.4.6", "vulns": []},
            {"name": "requests", "version": "2.0.0", "vulns": [{"id": "PYSEC-2014-13", "fix_versions": ["2.3.0"]}]},
        ]}
        verdict = gate.judge_report(report)
        assert verdict.exit_code == 1
        assert "requests 2.0.0: PYSEC-2014-13 (fixed in 2.3.0)" in verdict.message

    def test_a_clean_audit_passes(self) -> None:
        report = {"dependencies": [{"name": "numpy", "version": "2.4.6", "vulns": []}]}
        verdict = gate.judge_report(report)
        assert verdict.exit_code == 0 and "no known vulnerabilities in 1" in verdict.message

    def test_nothing_looked_up_is_reported_as_skipped_not_as_clean(self) -> None:
        report = {"dependencies": [
            {"name": "numpy", "skip_reason": "Dependency not found on PyPI and could not be audited: numpy (2.4.6)"},
            {"name": "orjson", "skip_reason": "Dependency not found on PyPI and could not be audited: orjson (3.13.0)"},
        ]}
        verdict = gate.judge_report(report)
        assert verdict.exit_code == 0 and "SKIPPED" in verdict.message and "no known" not in verdict.message

    def test_a_few_unpublished_distributions_are_named_but_do_not_hide_the_rest(self) -> None:
        report = {"dependencies": [
            {"name": "numpy", "version": "2.4.6", "vulns": []},
            {"name": "local-thing", "skip_reason": "Dependency not found on PyPI"},
        ]}
        verdict = gate.judge_report(report)
        assert verdict.exit_code == 0 and "local-thing" in verdict.message and "SKIPPED" not in verdict.message


class TestJudgeFailure:
    def test_an_unreachable_service_skips(self) -> None:
        stderr = "requests.exceptions.ConnectionError: Max retries exceeded with url: /v1/query (NameResolutionError)"
        verdict = gate.judge_failure(1, stderr)
        assert verdict.exit_code == 0 and "SKIPPED" in verdict.message

    def test_any_other_error_fails(self) -> None:
        verdict = gate.judge_failure(2, "pip-audit: error: unrecognized arguments: --bogus")
        assert verdict.exit_code == 2 and "unrecognized" in verdict.message
