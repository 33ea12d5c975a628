"""A promotion in MLflow reaches every replica: two workers on the embedded stack follow the `champion`
alias of a real MLflow server, both swap within 10 s while applications flow, and none fails or goes
unscored. MLflow down never stops scoring: the serving model stays and `streamer_model_registry_up` says so."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from streamer.local.processes import free_port
from streamer.local.produce import publish
from streamer.local.stack import WorkerProcess
from streamer.local.synthetic import ApplicationFactory
from tests.conftest import REPO, TANSU_ONLY, Isolated
from tests.integration.helpers import dead_letter_count, decisions_read, eventually, readiness, scrape
from tests.integration.mlflow_server import MlflowServer
from training import mlflow_store
from training.testing import build_artifact

pytestmark = [pytest.mark.integration, TANSU_ONLY]

SWAP_DEADLINE_S = 10.0
SHIPPED_SHA256 = json.loads((REPO / "onnx_models" / "registry.json").read_text())["models"][
    "german-credit-logreg-1"]["sha256"]


def _serving_sha256(worker: WorkerProcess) -> set[str]:
    return {key.split("sha256=")[1].split(",")[0].rstrip("}") for key, value in scrape(worker.web_port).items()
            if key.startswith("streamer_model_info{") and value == 1}


def _registered(server: MlflowServer, model_dir: Path, key: str, name: str) -> MlflowClient:
    client = mlflow_store.client(server.url)
    mlflow_store.log_and_register(client, model_dir, key, {}, name)
    return client


def _start_workers(isolated: Isolated, count: int, **env: str) -> list[WorkerProcess]:
    workers = [isolated.start_worker(wait=False, STREAMER_DATA_DIR=str(isolated.run_dir / f"worker-{n}"), **env)
               for n in range(count)]
    for worker in workers:
        worker.wait_ready()
    return workers


def _mlflow_env(server_url: str, name: str) -> dict[str, str]:
    return {"STREAMER_MODEL_REGISTRY": "mlflow", "STREAMER_MLFLOW_TRACKING_URI": server_url,
            "STREAMER_MLFLOW_MODEL_NAME": name, "STREAMER_MLFLOW_TIMEOUT_S": "2"}


def test_a_promotion_reaches_both_workers_within_10_s_and_no_application_fails_or_goes_unscored(
    isolated: Isolated, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    model_dir = Path(shutil.copytree(REPO / "onnx_models", tmp_path / "models"))
    client = _registered(mlflow_server, model_dir, "german-credit-logreg-1", name)
    actor = mlflow_store.Actor("test", "fleet promotion")
    mlflow_store.promote(client, name, "german-credit-logreg-1", actor, "2026-12-03T00:00:00Z")
    v2 = build_artifact(model_dir, version="2", subsample=0.8, seed=3)
    _registered(mlflow_server, model_dir, v2, name)
    v2_sha256 = json.loads((model_dir / "registry.json").read_text())["models"][v2]["sha256"]
    workers = _start_workers(isolated, 2, **_mlflow_env(mlflow_server.url, name))
    assert all(_serving_sha256(w) == {SHIPPED_SHA256} for w in workers)

    # Applications flow at 250/s from before the promotion until 2 s after both workers swapped.
    stop, published = threading.Event(), []
    payloads = ApplicationFactory(seed=43).mixed(20_000, 0)
    flow = threading.Thread(target=lambda: published.append(publish(isolated.settings, payloads, 250.0, stop)))
    flow.start()
    eventually(lambda: sum(scrape(w.web_port).get("streamer_applications_consumed_total", 0) for w in workers)
               >= 500, 30, "the workers are scoring")
    started = time.monotonic()
    mlflow_store.promote(client, name, v2, actor, "2026-12-03T00:01:00Z")
    promoted_at = time.monotonic()  # the alias moved just before: only the history tag is written after it
    swapped_after: dict[int, float] = {}
    while len(swapped_after) < len(workers) and time.monotonic() - promoted_at < 30:
        for n, worker in enumerate(workers):
            if n not in swapped_after and _serving_sha256(worker) == {v2_sha256}:
                swapped_after[n] = time.monotonic() - promoted_at
        time.sleep(0.1)
    time.sleep(2.0)
    stop.set()
    flow.join()

    assert sorted(swapped_after) == [0, 1], f"not every worker swapped: {swapped_after}"
    assert max(swapped_after.values()) < SWAP_DEADLINE_S, (swapped_after, f"promote took {promoted_at - started:.1f} s")
    (count,) = published
    decisions = decisions_read(isolated.settings, count)
    per_application = Counter(str(d["application_id"]) for d in decisions)
    assert len(per_application) == count and set(per_application.values()) == {1}
    assert dead_letter_count(isolated.settings) == 0
    assert {d["model"]["sha256"] for d in decisions} == {SHIPPED_SHA256, v2_sha256}  # type: ignore[index]
    for worker in workers:
        metrics = scrape(worker.web_port)
        assert metrics["streamer_model_swaps_total"] == 1
        assert metrics["streamer_model_registry_up"] == 1
        assert not any(k.startswith("streamer_model_load_failures_total{") and v for k, v in metrics.items())
        assert not any(k.startswith("streamer_batch_failures_total{") and v for k, v in metrics.items())


def test_mlflow_stopping_never_stops_scoring_and_the_gauge_says_the_registry_is_unreachable(
    isolated: Isolated, mlflow_server: MlflowServer
) -> None:
    name = f"outage-{uuid.uuid4().hex[:8]}"
    client = _registered(mlflow_server, REPO / "onnx_models", "german-credit-logreg-1", name)
    mlflow_store.promote(client, name, "german-credit-logreg-1", mlflow_store.Actor("test", "outage"), "now")
    (worker,) = _start_workers(isolated, 1, **_mlflow_env(mlflow_server.url, name))
    factory = ApplicationFactory(seed=44)
    mlflow_server.stop()
    try:
        eventually(lambda: scrape(worker.web_port).get("streamer_model_registry_up") == 0, 15,
                   "the registry is reported unreachable")
        publish(isolated.settings, list(factory.mixed(300, 0)))
        decisions = decisions_read(isolated.settings, 300)
        assert {d["model"]["sha256"] for d in decisions} == {SHIPPED_SHA256}  # type: ignore[index]
        assert readiness(worker.web_port) == 200
    finally:
        mlflow_server.start()
    eventually(lambda: scrape(worker.web_port).get("streamer_model_registry_up") == 1, 15, "the registry is back")
    assert worker.process is not None and worker.process.poll() is None


def test_a_worker_starting_while_mlflow_is_down_serves_the_default_model(isolated: Isolated) -> None:
    (worker,) = _start_workers(isolated, 1, **_mlflow_env(f"http://127.0.0.1:{free_port()}", "german-credit"))

    assert _serving_sha256(worker) == {SHIPPED_SHA256}
    assert scrape(worker.web_port)["streamer_model_registry_up"] == 0
    publish(isolated.settings, list(ApplicationFactory(seed=45).mixed(100, 0)))
    assert len(decisions_read(isolated.settings, 100)) == 100
