"""Session-scoped real servers, started once per test run and broker: PostgreSQL, and a broker that is
either the embedded Tansu (what `make demo` users get) or Apache Kafka (what production runs).

Every test that touches a broker runs on both (ids `[tansu]` and `[kafka]`). Where Java or Maven is
missing, the Kafka tier is skipped with one line saying why. A module that needs no broker, or whose
subject is the embedded stack itself, runs on Tansu alone: `pytestmark = TANSU_ONLY`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from streamer.audit.migrations import migrate
from streamer.config import Settings
from streamer.local.kafka_jars import tools_missing
from streamer.local.stack import BrokerKind, LocalStack, WorkerProcess

REPO = Path(__file__).resolve().parents[1]


BROKERS = [pytest.param("tansu", id="tansu"), pytest.param("kafka", id="kafka")]
TANSU_ONLY = pytest.mark.tansu_only
KAFKA_ONLY = pytest.mark.kafka_only


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked tansu_only (kafka_only) run on that broker alone: their other variant is left out."""
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        kind = getattr(getattr(item, "callspec", None), "params", {}).get("broker")
        wrong = (kind == "kafka" and item.get_closest_marker("tansu_only")) or (
            kind == "tansu" and item.get_closest_marker("kafka_only"))
        (left_out if wrong else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> BrokerKind:
    kind: BrokerKind = request.param
    if kind == "kafka" and (missing := tools_missing()):
        pytest.skip(f"Apache Kafka tier skipped: {missing}")
    return kind


@pytest.fixture(scope="session")
def stack(broker: BrokerKind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp(f"stack-{broker}"), broker=broker) as running:
        yield running


@dataclass
class Isolated:
    """Topics, consumer groups and a database of one test's own, on the shared servers."""

    stack: LocalStack
    settings: Settings
    env: dict[str, str]
    run_dir: Path

    def start_worker(self, wait: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess({**self.env, **env}, self.run_dir / "worker.log", cwd=REPO).start()
        self.stack.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def audit_rows(self) -> int:
        with psycopg.connect(self.settings.database_url.get_secret_value()) as conn:
            row = conn.execute("SELECT count(*) FROM decision_audit").fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def isolated(stack: LocalStack, tmp_path: Path) -> Iterator[Isolated]:
    tag = uuid.uuid4().hex[:10]
    database = f"t_{tag}"
    with psycopg.connect(stack.postgres.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = make_conninfo(stack.postgres.url, dbname=database)
    migrate(url)
    overrides = {
        "STREAMER_INPUT_TOPIC": f"apps-{tag}",
        "STREAMER_DECISION_TOPIC": f"decisions-{tag}",
        "STREAMER_DLQ_TOPIC": f"dlq-{tag}",
        "STREAMER_APP_ID": f"streamer-{tag}",
        "STREAMER_DATABASE_URL": url,
        "STREAMER_TOPIC_PARTITIONS": "4",
        "STREAMER_MODEL_DIR": str(REPO / "onnx_models"),
    }
    env = stack.env(**overrides)
    env["STREAMER_DATA_DIR"] = str(tmp_path / "faust")
    settings = Settings(
        kafka_bootstrap=stack.kafka.bootstrap,
        broker_profile=stack.broker_kind,
        database_url=url,
        input_topic=overrides["STREAMER_INPUT_TOPIC"],
        decision_topic=overrides["STREAMER_DECISION_TOPIC"],
        dlq_topic=overrides["STREAMER_DLQ_TOPIC"],
        app_id=overrides["STREAMER_APP_ID"],
        topic_partitions=4,
        model_dir=REPO / "onnx_models",
        record_keys=stack.record_keys,
    )
    yield Isolated(stack, settings, env, tmp_path)
    for worker in stack.workers:
        worker.stop()
    stack.workers.clear()
