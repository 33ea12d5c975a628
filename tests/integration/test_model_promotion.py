"""A promotion reaches a running worker between batches, with no application failed or unscored; a bad
candidate is refused while the old model keeps scoring."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import LoanApplication
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import REGISTRY_FILE
from tests.conftest import REPO, Isolated
from tests.integration.helpers import dead_letter_count, decisions_read, eventually, scrape
from training import store
from training.testing import build_artifact, build_mismatched_artifact

pytestmark = pytest.mark.integration


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPO / "onnx_models", tmp_path / "models"))


def _register_as_champion(model_dir: Path, key: str, file_bytes: bytes, sha256: str | None = None) -> None:
    """What a careless promotion might leave behind: a champion entry pointing at these bytes."""
    (model_dir / f"{key}.onnx").write_bytes(file_bytes)
    registry = json.loads((model_dir / REGISTRY_FILE).read_text())
    template = registry["models"][registry["champion"]]
    registry["models"][key] = {**template, "version": key.rsplit("-", 1)[1], "file": f"{key}.onnx",
                               "sha256": sha256 or hashlib.sha256(file_bytes).hexdigest()}
    registry["champion"] = key
    tmp = model_dir / f".{REGISTRY_FILE}.tmp"
    tmp.write_text(json.dumps(registry))
    os.replace(tmp, model_dir / REGISTRY_FILE)


def _scorer(model_dir: Path, key: str) -> OnnxScorer:
    entry = json.loads((model_dir / REGISTRY_FILE).read_text())["models"][key]
    return OnnxScorer.load(model_dir / entry["file"], entry["name"], str(entry["version"]), entry["sha256"])


def test_a_promotion_swaps_the_model_while_applications_flow_and_none_fails(
    isolated: Isolated, model_dir: Path
) -> None:
    v1 = json.loads((model_dir / REGISTRY_FILE).read_text())["champion"]
    v2 = build_artifact(model_dir, version="2", subsample=0.8, seed=3)  # registered, not yet champion
    worker = isolated.start_worker(STREAMER_MODEL_DIR=str(model_dir))
    payloads = list(ApplicationFactory(seed=41).mixed(3000, 0))

    flow = threading.Thread(target=publish, args=(isolated.settings, payloads, 300.0))
    flow.start()
    eventually(lambda: scrape(worker.web_port).get("streamer_applications_consumed_total", 0) >= 600, 30,
               "the worker is scoring")
    store.promote(model_dir, v2)
    flow.join()

    decisions = decisions_read(isolated.settings, 3000, settle_s=0.5)
    assert len(decisions) == 3000
    assert dead_letter_count(isolated.settings) == 0
    by_version = {d["model"]["version"] for d in decisions}  # type: ignore[index]
    assert by_version == {"1", "2"}
    scorers = {"1": _scorer(model_dir, v1), "2": _scorer(model_dir, v2)}
    applications = {p.key.decode(): LoanApplication.model_validate_json(p.value) for p in payloads}
    for d in decisions[::25]:
        scorer = scorers[d["model"]["version"]]  # type: ignore[index]
        expected = float(scorer.score([applications[str(d["application_id"])]]).probability_of_default[0])
        assert d["probability_of_default"] == pytest.approx(expected, abs=1e-6)
        assert d["model"]["sha256"] == scorer.ref.sha256  # type: ignore[index]
    assert scrape(worker.web_port)["streamer_model_swaps_total"] == 1


def test_bad_candidates_are_refused_and_the_serving_model_keeps_scoring(isolated: Isolated, model_dir: Path) -> None:
    worker = isolated.start_worker(STREAMER_MODEL_DIR=str(model_dir))
    serving = json.loads((model_dir / REGISTRY_FILE).read_text())
    serving_sha = serving["models"][serving["champion"]]["sha256"]
    good = (model_dir / serving["models"][serving["champion"]]["file"]).read_bytes()
    factory = ApplicationFactory(seed=42)
    cases: list[tuple[str, Callable[[], object], str]] = [
        ("truncated", lambda: _register_as_champion(model_dir, "german-credit-logreg-7", good[: len(good) // 3]),
         "not_onnx"),
        ("corrupt", lambda: _register_as_champion(model_dir, "german-credit-logreg-8", os.urandom(4096)), "not_onnx"),
        ("wrong sha256", lambda: _register_as_champion(model_dir, "german-credit-logreg-9", good, "0" * 64),
         "sha256_mismatch"),
        ("other input names", lambda: build_mismatched_artifact(model_dir, promote=True), "schema_mismatch"),
    ]
    published = 0
    for label, make_bad_champion, reason in cases:
        metric = f"streamer_model_load_failures_total{{reason={reason}}}"
        before = scrape(worker.web_port).get(metric, 0)
        make_bad_champion()
        def counted(m: str = metric, b: float = before) -> bool:
            return scrape(worker.web_port).get(m, 0) > b

        eventually(counted, 15, f"{label}: refusal counted")
        publish(isolated.settings, list(factory.mixed(100, 0)))
        published += 100
        decisions = decisions_read(isolated.settings, published, settle_s=0.5)
        assert {d["model"]["sha256"] for d in decisions} == {serving_sha}, label  # type: ignore[index]
    assert dead_letter_count(isolated.settings) == 0
    assert worker.process is not None and worker.process.poll() is None
