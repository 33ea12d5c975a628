"""The commands a user types, run as a user runs them: as processes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.local.stack import WorkerProcess
from streamer.local.tally import TopicReader
from tests.conftest import REPO, TANSU_ONLY, Isolated
from tests.integration.cli_process import command, postgres_of

# Tansu alone: the CLI's own behaviour; `demo` runs the embedded stack whatever the suite's broker.
pytestmark = [pytest.mark.integration, TANSU_ONLY]


@pytest.mark.embedded_stack
def test_demo_accounts_for_every_application_and_leaves_no_process_behind() -> None:
    with command(["demo", "--count", "400"]) as demo:
        code = demo.wait_exit(240)
        out = "".join(demo.lines)
        assert code == 0, out[-4000:]
        assert re.search(r"accounted for\s+400 of 400\b", out), out
        assert re.search(r"audit rows\s+396\n", out), out
        run_dir = next(line for line in demo.lines if "postgres " in line).split("host=", 1)[1].split(";")[0]
        assert len(demo.seen) >= 2, f"the broker and worker processes were never seen: {demo.seen}"
        assert demo.survivors() == [], "processes the demo started outlived it"
        assert postgres_of(run_dir.removesuffix("/pg")) == []


def test_produce_publishes_the_requested_number_of_applications(isolated: Isolated) -> None:
    env = {**isolated.env}
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "produce", "--count", "250", "--invalid-every", "50"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reader = TopicReader(isolated.settings, isolated.settings.input_topic)
    try:
        assert reader.read_until(lambda r: len(r) >= 250, 30)
        reader.read_more(0.5)
        assert len(reader.records) == 250
    finally:
        reader.close()


def test_migrate_is_idempotent(isolated: Isolated) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "migrate"],
        cwd=REPO, env=isolated.env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "database is up to date" in result.stdout


# The prod overlay's Kafka settings, with a CA bundle that is not there: the migrate Job and the partitions
# CronJob talk to Postgres only, so nothing of Kafka's may be read or built before they do their work.
PROD_KAFKA_ENV = {
    "STREAMER_KAFKA_BOOTSTRAP": "kafka.invalid:9093",
    "STREAMER_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAMER_SASL_MECHANISM": "SCRAM-SHA-512",
    "STREAMER_SASL_USERNAME": "streamer",
    "STREAMER_SASL_PASSWORD": "not-a-password",
    "STREAMER_SSL_CA_LOCATION": "/nonexistent/ca.pem",
}


@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["migrate"], "database is up to date"),
        (["audit-partitions"], "rows in the DEFAULT partition: 0"),
    ],
)
def test_database_commands_need_nothing_of_kafka(isolated: Isolated, argv: list[str], printed: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamer", *argv],
        cwd=REPO, env={**isolated.env, **PROD_KAFKA_ENV}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert printed in result.stdout


def test_worker_starts_from_a_directory_where_its_data_dir_does_not_exist(isolated: Isolated, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-clone"
    fresh.mkdir()
    env = {k: v for k, v in isolated.env.items() if k != "STREAMER_DATA_DIR"}  # the default: .streamer/faust
    worker = WorkerProcess(env, tmp_path / "worker.log", cwd=fresh).start()
    isolated.stack.workers.append(worker)
    worker.wait_ready()
    assert (fresh / ".streamer" / "faust").is_dir()
