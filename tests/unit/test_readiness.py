"""Readiness: the model is loaded and both loops are alive and either hold their assignment (an empty one
too: idle by design) or are in a rebalance younger than the grace. Postgres is reported, never a gate: an
outage must not take every scoring pod out of rotation, nor block rollouts and node drains."""

from __future__ import annotations

from typing import Any

from streamer.app.pipeline import PipelineService
from streamer.app.readiness import LoopView, Readiness
from streamer.config import Settings
from streamer.runtime.membership import GroupState, Membership

NOW = 1000.0
GRACE_S = 300.0


def _loop(state: GroupState, partitions: int = 0, since: float = NOW - 1, alive: bool = True,
          name: str = "scorer") -> LoopView:
    return LoopView(name, alive, Membership(state, partitions, since))


def _holding(name: str, partitions: int = 4) -> LoopView:
    return _loop(GroupState.ASSIGNED, partitions, name=name)


def _readiness(*loops: LoopView, model_loaded: bool = True, database_up: bool = True) -> Readiness:
    return Readiness(model_loaded, loops, database_up, now=NOW, rebalance_grace_s=GRACE_S)


class TestReadiness:
    def test_a_loaded_model_and_two_live_loops_holding_partitions_are_ready(self) -> None:
        assert _readiness(_holding("scorer"), _holding("audit")).ready

    def test_loops_holding_an_empty_assignment_are_ready_idle_by_design(self) -> None:
        assert _readiness(_holding("scorer", 0), _holding("audit", 0)).ready

    def test_postgres_down_does_not_make_the_worker_unready(self) -> None:
        readiness = _readiness(_holding("scorer"), _holding("audit"), database_up=False)
        assert readiness.ready
        assert readiness.body()["database_up"] is False  # reported, for whoever reads the body

    def test_without_the_model_the_worker_is_not_ready(self) -> None:
        assert not _readiness(_holding("scorer"), _holding("audit"), model_loaded=False).ready

    def test_without_loops_the_worker_is_not_ready(self) -> None:
        assert not _readiness().ready

    def test_a_dead_loop_makes_the_worker_unready_whatever_it_held(self) -> None:
        dead = _loop(GroupState.ASSIGNED, 4, alive=False, name="audit")
        assert not _readiness(_holding("scorer"), dead).ready

    def test_a_loop_that_has_not_joined_its_group_yet_is_not_ready(self) -> None:
        """At start-up, and while its topic is missing (no assignment comes: tests/integration/test_topics.py)."""
        assert not _readiness(_holding("scorer"), _loop(GroupState.JOINING, name="audit")).ready

    def test_a_rebalance_in_progress_keeps_the_worker_ready(self) -> None:
        """A readiness flap on every scale event would be worse than the few seconds of a rebalance."""
        rebalancing = _loop(GroupState.REVOKED, since=NOW - 20, name="audit")
        assert _readiness(_holding("scorer"), rebalancing).ready

    def test_a_loop_revoked_and_not_assigned_again_within_the_grace_is_not_ready(self) -> None:
        stuck = _loop(GroupState.REVOKED, since=NOW - GRACE_S, name="audit")
        assert not _readiness(_holding("scorer"), stuck).ready

    def test_a_stopped_loop_is_not_ready(self) -> None:
        assert not _readiness(_holding("scorer"), _loop(GroupState.STOPPED, name="audit")).ready

    def test_the_body_says_where_each_loop_stands(self) -> None:
        body = _readiness(_holding("scorer", 3), _loop(GroupState.REVOKED, since=NOW - 2.5, name="audit")).body()
        assert body["ready"] is True and body["model_loaded"] is True and body["database_up"] is True
        assert body["loops"] == {
            "scorer": {"alive": True, "state": "assigned", "partitions": 3, "for_s": 1.0},
            "audit": {"alive": True, "state": "revoked", "partitions": 0, "for_s": 2.5},
        }


class FakeLoop:
    """What the pipeline reads of a BatchLoop."""

    def __init__(self, name: str, membership: Membership) -> None:
        self.name, self.membership = name, membership

    def is_alive(self) -> bool:
        return True


class TestPipelineReadiness:
    def test_a_worker_with_its_model_and_both_loops_assigned_is_ready_while_postgres_is_down(self) -> None:
        pipeline = PipelineService(Settings())
        pipeline.model = object()  # type: ignore[assignment]  # only its presence matters here
        loops: list[Any] = [FakeLoop("scorer", Membership(GroupState.ASSIGNED, 2)),
                            FakeLoop("audit", Membership(GroupState.ASSIGNED, 0))]
        pipeline.loops = loops
        pipeline.database_ok = False
        assert pipeline.ready()
        assert pipeline.readiness().body()["database_up"] is False

    def test_the_rebalance_grace_is_the_rebalance_timeout_max_poll_interval(self) -> None:
        pipeline = PipelineService(Settings(max_poll_interval_ms=45_000))
        assert pipeline.readiness().rebalance_grace_s == 45.0
