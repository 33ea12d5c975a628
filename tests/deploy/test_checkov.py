"""checkov's Kubernetes policies on every rendered overlay: no failed check.

checkov runs from its own venv (.venv/checkov, made by `make test`; see Makefile). Skips live in two places,
each with its reason: annotations `checkov.io/skipN` on a manifest when the check does not fit the app
(CKV_K8S_35, secrets as env vars: Settings reads only the environment), and CHECKS_NOT_APPLICABLE below
when it does not fit this repository.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO, Doc, Rendered, render, yaml

CHECKS_NOT_APPLICABLE = {
    # The manifests name a placeholder image (registry.example.com/streamer:0.1.0); there is no digest to pin
    # until an image is published. Overlays for a real registry should use `images: [{digest: sha256:...}]`.
    "CKV_K8S_43": "image digest pinning: the image is a placeholder",
}
MANIFEST_SKIPS = {"CKV_K8S_35"}
_REPORTS: dict[str, dict[str, Any]] = {}


def checkov() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(REPO / ".venv" / "checkov" / "bin" / "checkov"),
                      shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("checkov is not installed: `make test` puts it in .venv/checkov (requirements/checkov.txt)")


def scan(docs: list[Doc]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "rendered.yaml"
        manifest.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
        proc = subprocess.run(
            [checkov(), "--file", str(manifest), "--framework", "kubernetes", "--output", "json", "--compact",
             "--skip-download", "--skip-check", ",".join(CHECKS_NOT_APPLICABLE)],
            capture_output=True, text=True, check=False, timeout=300, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return dict(report[0] if isinstance(report, list) else report)


def report_of(rendered: Rendered) -> dict[str, Any]:
    if rendered.overlay not in _REPORTS:
        _REPORTS[rendered.overlay] = scan(rendered.docs)
    return _REPORTS[rendered.overlay]


class TestCheckov:
    def test_no_policy_fails_on_the_rendered_manifests(self, rendered: Rendered) -> None:
        report = report_of(rendered)
        failed = report["results"]["failed_checks"]
        assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)
        assert report["summary"]["passed"] > 100

    def test_only_the_documented_checks_are_skipped(self, rendered: Rendered) -> None:
        skipped = {c["check_id"] for c in report_of(rendered)["results"]["skipped_checks"]}
        assert skipped <= MANIFEST_SKIPS, skipped - MANIFEST_SKIPS

    def test_every_skip_annotation_gives_a_reason(self, rendered: Rendered) -> None:
        for doc in rendered.docs:
            for key, value in doc["metadata"].get("annotations", {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert check in MANIFEST_SKIPS and len(reason.strip()) > 20, (doc["metadata"]["name"], value)

    def test_a_writable_root_filesystem_would_be_caught(self) -> None:
        docs = copy.deepcopy(render("base").docs)
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
        failed = {c["check_id"] for c in scan(docs)["results"]["failed_checks"]}
        assert "CKV_K8S_22" in failed
