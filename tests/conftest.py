"""Session-scoped real servers: the embedded Tansu broker and PostgreSQL, started once per test run."""

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
from streamer.local.stack import LocalStack, WorkerProcess

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("stack")) as running:
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
        database_url=url,
        input_topic=overrides["STREAMER_INPUT_TOPIC"],
        decision_topic=overrides["STREAMER_DECISION_TOPIC"],
        dlq_topic=overrides["STREAMER_DLQ_TOPIC"],
        app_id=overrides["STREAMER_APP_ID"],
        topic_partitions=4,
        model_dir=REPO / "onnx_models",
    )
    yield Isolated(stack, settings, env, tmp_path)
    for worker in stack.workers:
        worker.stop()
    stack.workers.clear()
