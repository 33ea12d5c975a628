"""Run pip-audit on the project's environment and decide: pass, fail on a finding, or skip when offline.

pip-audit looks each installed distribution up in a vulnerability service (PyPI's JSON API by default).
Where that service cannot be reached it either errors out or, when PyPI answers 404 for every release,
"skips" every dependency and still reports "No known vulnerabilities found". Neither is a pass, and
neither is a finding: this gate says the audit was skipped and exits 0. A real finding exits 1.

Usage: python deploy/pip_audit_gate.py [extra pip-audit arguments]   (run by `make lint`)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASS, FAIL, SKIPPED = 0, 1, 0
# Substrings of pip-audit's error output that mean "could not reach the service", not "found something".
UNREACHABLE = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "NameResolutionError",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Max retries exceeded",
    "Network is unreachable",
    "ServiceError",
    "ProxyError",
    "SSLError",
)


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    message: str


def judge_report(report: dict[str, Any]) -> Verdict:
    """Decide from pip-audit's JSON report."""
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    if vulnerable:
        lines = [
            f"  {d['name']} {d.get('version', '?')}: {v['id']}"
            + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
            for d in vulnerable
            for v in d["vulns"]
        ]
        return Verdict(FAIL, "pip-audit: known vulnerabilities found:\n" + "\n".join(lines))
    skipped = [d for d in deps if "skip_reason" in d]
    audited = len(deps) - len(skipped)
    if deps and audited == 0:
        return Verdict(
            SKIPPED,
            f"pip-audit: SKIPPED - the vulnerability service could not look up any of the {len(deps)} "
            "installed distributions (no access to it from here); nothing was audited.",
        )
    names = ", ".join(d["name"] for d in skipped)
    note = f" ({len(skipped)} not on the index, not audited: {names})" if skipped else ""
    return Verdict(PASS, f"pip-audit: no known vulnerabilities in {audited} distributions{note}")


def judge_failure(returncode: int, stderr: str) -> Verdict:
    """Decide when pip-audit wrote no report."""
    if any(marker in stderr for marker in UNREACHABLE):
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        return Verdict(SKIPPED, f"pip-audit: SKIPPED - the vulnerability service is unreachable ({last})")
    return Verdict(returncode or FAIL, f"pip-audit failed (exit {returncode}):\n{stderr}")


def run(extra_args: list[str]) -> Verdict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off",
             "--format", "json", "--output", str(out), *extra_args],
            capture_output=True, text=True, check=False,
        )
        if out.exists() and out.stat().st_size:
            return judge_report(json.loads(out.read_text(encoding="utf-8")))
        return judge_failure(proc.returncode, proc.stderr)


def main() -> int:
    verdict = run(sys.argv[1:])
    print(verdict.message, file=sys.stderr if verdict.exit_code else sys.stdout)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
