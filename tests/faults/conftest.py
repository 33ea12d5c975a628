"""Sizes of the fault suite: one test body, a quick form for `make test` and a soak form for `make soak`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer.local.stack import BrokerKind, LocalStack
from tests.conftest import REPO
from tests.faults import harness


@dataclass(frozen=True)
class Sizes:
    name: str
    kills: int  # test 1: SIGKILLs
    kill_applications: int  # test 1: applications flowing meanwhile
    postgres_down_s: float  # test 2
    postgres_frozen_s: float  # test 2b: the audit's Postgres backends stopped (SIGSTOP)
    broker_frozen_s: float  # test 3
    broker_restarts: int  # test 3: broker kills and restarts, one after another
    rebalance_applications: int  # test 4
    poison_generated: int  # test 5: generated payloads (hypothesis seeds, mutated)
    poison_seeds: int  # test 5: documents drawn by hypothesis-jsonschema
    resubmit_after_s: float  # test 6
    resubmit_applications: int  # test 6
    sigterm_applications: int  # test 7
    overload_s: float  # test 8
    failover_kills: int  # test 9: partition leaders killed, one after another
    failover_down_s: float  # test 9: how long each stays down


# The quick forms run on two brokers inside `make test` (< 25 min on 2 cores): each is sized to show its fault's
# effect at the least cost (3 kills cover the catching-up and steady moments). The overload stays at 6 s: at
# 4 s the publisher's start and the 1 s sampling took a third of the window, and it offered under 2x capacity.
QUICK = Sizes("quick", kills=3, kill_applications=3_000, postgres_down_s=10, postgres_frozen_s=12, broker_frozen_s=10,
              broker_restarts=1, rebalance_applications=6_000, poison_generated=3_000, poison_seeds=60,
              resubmit_after_s=3, resubmit_applications=200, sigterm_applications=6_000, overload_s=6,
              failover_kills=1, failover_down_s=10)
SOAK = Sizes("soak", kills=20, kill_applications=20_000, postgres_down_s=60, postgres_frozen_s=60, broker_frozen_s=30,
             broker_restarts=3, rebalance_applications=30_000, poison_generated=100_000, poison_seeds=600,
             resubmit_after_s=120, resubmit_applications=10_000, sigterm_applications=30_000, overload_s=60,
             failover_kills=3, failover_down_s=30)


@pytest.fixture(params=[pytest.param(QUICK, id="quick"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def size(request: pytest.FixtureRequest) -> Sizes:
    return request.param  # type: ignore[no-any-return]


# The processing guarantee each fault test runs in. Apache Kafka: exactly_once (the default) everywhere; the soak
# also runs every test in at_least_once, `make test` only those marked `both_guarantees`, where the guarantee
# changes what the output holds (kills, rebalances, stops). Tansu: at_least_once, because it shows aborted
# transactions to read_committed consumers, so exactly_once would promise there what it cannot keep.
GUARANTEES = [pytest.param("exactly_once", id="exactly_once"), pytest.param("at_least_once", id="at_least_once")]


@pytest.fixture(autouse=True, params=GUARANTEES)
def guarantee(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every worker the test spawns runs in this guarantee (harness.spawn reads it)."""
    value: str = request.param
    monkeypatch.setattr(harness, "GUARANTEE", value)
    return value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kind, chosen, size = params.get("broker"), params.get("guarantee"), params.get("size")
        wrong = (kind == "tansu" and chosen == "exactly_once") or (
            chosen == "at_least_once" and item.get_closest_marker("exactly_once_only")) or (
            chosen == "exactly_once" and item.get_closest_marker("at_least_once_only")) or (
            kind == "kafka" and chosen == "at_least_once" and getattr(size, "name", "") == "quick"
            and not item.get_closest_marker("both_guarantees") and not item.get_closest_marker("at_least_once_only"))
        (left_out if wrong else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture
def own_stack(broker: BrokerKind, tmp_path: Path) -> Iterator[LocalStack]:
    """Servers of the test's own, for faults that would disturb every other test (broker, Postgres)."""
    with LocalStack(tmp_path, broker=broker) as stack:
        yield stack


def own_stack_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    return stack.env(STREAMER_MODEL_DIR=str(REPO / "onnx_models"), STREAMER_TOPIC_PARTITIONS="4", **extra)
