"""Every long-running command stops promptly on SIGINT (Ctrl-C) and SIGTERM (`timeout`, a k8s Job).

A terminal's Ctrl-C signals the whole foreground process group at once, so SIGINT goes to the command's
group; SIGTERM goes to the command alone, as `kill` and Kubernetes send it. Faust's worker takes both down
one path (it cancels the command), so `produce` is tested with both, `local` and `demo` with Ctrl-C (where the
order of the drain matters) and `worker` with SIGINT (its SIGTERM test is tests/faults/test_sigterm.py).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from streamer.config import Settings
from streamer.local.processes import free_port
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.topics import ensure_topics
from tests.conftest import TANSU_ONLY, Isolated
from tests.integration.cli_process import command, postgres_of

# Tansu alone: signal handling; `local` and `demo` run the embedded stack whatever the suite's broker.
pytestmark = [pytest.mark.integration, TANSU_ONLY]

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]


@pytest.mark.parametrize("sig", SIGNALS)
def test_produce_stops_publishing_on_a_signal(isolated: Isolated, sig: signal.Signals) -> None:
    ensure_topics(isolated.settings, [isolated.settings.input_topic])  # so the reader sees its partitions
    with command(["produce", "--count", "100000", "--rate", "500"], env=isolated.env) as produce:
        reader = TopicReader(isolated.settings, isolated.settings.input_topic)
        try:
            assert reader.read_until(lambda r: len(r) >= 200, 60), "produce published nothing"
            produce.signal(sig)
            assert produce.printed("stopped after publishing"), produce.output()
            reader.read_more(1.0)
            published = len(reader.records)
            time.sleep(2.0)  # anything still publishing would add ~1,000 records in this time
            reader.read_more(1.0)
            assert len(reader.records) == published < 100_000
        finally:
            reader.close()


@pytest.mark.embedded_stack
def test_local_drains_its_worker_before_stopping_its_servers_on_ctrl_c() -> None:
    sig = signal.SIGINT  # to the process group, as a terminal sends it: the case where the order matters
    with command(["local", "--kafka-port", "0"]) as local:
        local.wait_for(lambda: local.printed("STREAMER_DATABASE_URL="), 120, "servers")
        bootstrap = next(line for line in local.lines if line.startswith("STREAMER_KAFKA_BOOTSTRAP=127.0.0.1:"))
        run_dir = next(line for line in local.lines if "host=" in line).rsplit("host=", 1)[1].strip()
        local.wait_for(lambda: local.printed("partitions_assigned"), 90, "a worker holding partitions")
        # Applications flowing when the signal comes: the worker has batches to drain and commit.
        settings = Settings(kafka_bootstrap=bootstrap.split("=", 1)[1].strip())
        stop_load = threading.Event()
        load = threading.Thread(
            target=publish, args=(settings, ApplicationFactory(seed=3).mixed(1_000_000, 0), 1000.0, stop_load),
            daemon=True,
        )
        load.start()
        local.wait_for(lambda: local.printed("batch_scored"), 60, "a scored batch")
        try:
            local.signal(sig)
        finally:
            stop_load.set()
        # The worker's log flows through ours: a broker or Postgres gone before its drain shows up as errors.
        errors = [line for line in local.lines if '"level": "error"' in line or "final_commit_failed" in line]
        assert errors == [], "".join(errors[:5])
        assert local.survivors() == [], local.output()
        assert postgres_of(run_dir.removesuffix("/pg")) == []


@pytest.mark.embedded_stack
def test_demo_stops_midway_on_ctrl_c_and_leaves_no_process_behind() -> None:
    sig = signal.SIGINT  # SIGTERM takes the same path in Faust's worker (produce and local test both)
    with command(["demo", "--count", "50000"]) as demo:
        demo.wait_for(lambda: demo.printed("publishing 50,000 applications"), 180, "publishing")
        run_dir = next(line for line in demo.lines if "postgres " in line).split("host=", 1)[1].split(";")[0]
        demo.signal(sig)
        assert demo.printed("demo stopped"), demo.output()
        assert demo.survivors() == [], demo.output()
        assert postgres_of(run_dir.removesuffix("/pg")) == []


def test_worker_stops_on_sigint_as_on_sigterm(isolated: Isolated) -> None:
    with command(["worker"], env={**isolated.env, "STREAMER_WEB_PORT": str(free_port())}) as worker:
        worker.wait_for(lambda: worker.printed("partitions_assigned"), 90, "its batch loops")
        worker.signal(signal.SIGINT)
        assert worker.process.returncode == 0, worker.output()
