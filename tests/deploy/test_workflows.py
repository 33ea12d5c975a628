"""The CI/CD workflow (.github/workflows/ci.yml): actionlint and zizmor find nothing (and each catches a
known mistake), and it does what the delivery pipeline promises: the README's test command, an image
scanned, described by a CycloneDX SBOM, signed keyless and pushed by digest, deployed by that digest.
Never run on GitHub from here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import REPO, yaml

WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
ACTIONLINTS = sorted((REPO / ".cache" / "go-tools").glob("actionlint-*/actionlint"))
ZIZMOR = Path(sys.executable).parent / "zizmor"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(CI.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _steps(job: str) -> list[dict[str, Any]]:
    steps = _workflow()["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _uses(job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if str(s.get("uses", "")).startswith(f"{action}@")]


def _actionlint() -> str:
    if not ACTIONLINTS:
        pytest.skip("actionlint is not built (`make test` builds it with Go; no Go on this machine)")
    return str(ACTIONLINTS[-1])


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120, cwd=REPO)


class TestValidators:
    def test_actionlint_finds_nothing(self) -> None:
        done = _run(_actionlint(), "-no-color", str(CI))
        assert done.returncode == 0, done.stdout + done.stderr

    def test_actionlint_catches_an_unknown_key_and_a_missing_needs(self, tmp_path: Path) -> None:
        broken = tmp_path / "broken.yml"
        broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nowhere\n"
                          "    stepz: []\n")
        done = _run(_actionlint(), "-no-color", str(broken))
        assert done.returncode != 0 and "stepz" in done.stdout and "nowhere" in done.stdout, done.stdout

    def test_zizmor_finds_nothing(self) -> None:
        assert ZIZMOR.exists(), "zizmor is a dev dependency: pip install -e '.[dev]'"
        done = _run(str(ZIZMOR), "--offline", "--no-progress", str(CI))
        assert done.returncode == 0, done.stdout + done.stderr

    def test_zizmor_catches_a_template_injection(self, tmp_path: Path) -> None:
        broken = tmp_path / "injected.yml"
        broken.write_text(
            "on: pull_request\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
            "      - run: echo \"${{ github.event.pull_request.title }}\"\n")
        done = _run(str(ZIZMOR), "--offline", "--no-progress", str(broken))
        assert done.returncode != 0 and "template-injection" in done.stdout + done.stderr, done.stdout


class TestPipeline:
    def test_the_test_job_runs_the_readmes_test_command(self) -> None:
        assert any(s.get("run") == ".ci/run" for s in _steps("test"))
        assert re.search(r"^exec make test$", (REPO / ".ci" / "run").read_text(), re.MULTILINE)
        assert "make test" in (REPO / "README.md").read_text()

    def test_every_action_is_pinned_to_a_commit(self) -> None:
        for job in _workflow()["jobs"]:
            for step in _steps(job):
                if "uses" in step:
                    assert PINNED.match(step["uses"]), f"{job}: {step['uses']} is not pinned to a commit"

    def test_no_job_gets_more_than_it_asks_for(self) -> None:
        workflow = _workflow()
        assert workflow["permissions"] == {}, "the default token must grant nothing"
        granted = {name: job.get("permissions") for name, job in workflow["jobs"].items()}
        assert granted["test"] == {"contents": "read"}
        assert granted["image"] == {"contents": "read", "packages": "write", "id-token": "write"}
        assert granted["deploy"] == {"contents": "read"}
        for job in workflow["jobs"]:
            for step in _uses(job, "actions/checkout"):
                assert step["with"]["persist-credentials"] is False, job

    def test_the_image_is_scanned_described_and_signed_by_digest_before_deploy(self) -> None:
        (scan,) = _uses("image", "aquasecurity/trivy-action")
        assert scan["with"]["exit-code"] == "1" and "CRITICAL" in scan["with"]["severity"]
        (sbom,) = [s for s in _steps("image") if "cyclonedx-py requirements" in s.get("run", "")]
        assert "-r requirements/sbom.txt" in sbom["run"] and "--require-hashes" in sbom["run"]
        names = [s.get("name", s.get("uses", "")) for s in _steps("image")]
        scanned, pushed = names.index(scan["name"]), names.index("push")
        assert scanned < pushed, "an image that fails the scan must never be pushed"
        sign = next(s["run"] for s in _steps("image") if "cosign sign" in s.get("run", ""))
        assert '"${IMAGE}@${DIGEST}"' in sign and "cosign attest" in sign and "cyclonedx" in sign
        assert _workflow()["jobs"]["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"

    def test_deploy_verifies_and_applies_the_digest_in_two_steps(self) -> None:
        job = _workflow()["jobs"]["deploy"]
        assert job["needs"] == "image" and job["environment"] == "production"
        script = "\n".join(s.get("run", "") for s in job["steps"])
        assert "cosign verify" in script
        assert 'registry.example.com/streamer=${IMAGE}@${DIGEST}' in script, "deployed by digest, not by tag"
        first, wait = script.index("component!=worker"), script.index("job/streamer-migrate --timeout")
        assert first < wait < script.rindex("kubectl apply -k k8s/overlays/prod"), "migration first"
        documented = (REPO / "deploy" / "README.md").read_text()
        assert "kubectl apply -k k8s/overlays/prod -l 'app.kubernetes.io/component!=worker'" in documented

    def test_only_pushes_build_images_and_only_main_deploys(self) -> None:
        jobs = _workflow()["jobs"]
        assert jobs["image"]["if"] == "github.event_name == 'push'" and jobs["image"]["needs"] == "test"
        assert jobs["deploy"]["if"] == "github.ref == 'refs/heads/main'"

