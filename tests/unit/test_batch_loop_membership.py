"""Where a batch loop stands in its consumer group, as its rebalance callbacks leave it: the fact readiness
is built on (`streamer/app/readiness.py`). librdkafka calls the callbacks from inside poll(); here the test
calls them the way it would, on a consumer that only records what the loop asks of it."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import TopicPartition

from streamer.runtime.batch_loop import BatchLoop
from streamer.runtime.membership import GroupState

TOPIC = "apps"


class RecordingConsumer:
    """Enough of librdkafka's consumer for the rebalance callbacks of a loop with nothing in flight."""

    def __init__(self) -> None:
        self.resumed: list[TopicPartition] = []

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.resumed.extend(partitions)

    def commit(self, **_: Any) -> None:
        return None

    def seek(self, _: TopicPartition) -> None:
        return None

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        return None

    def poll(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.01))

    def close(self) -> None:
        return None


def _consumer() -> Any:
    """Typed as the real consumer's stand-in: the loop's callbacks take a confluent_kafka.Consumer."""
    return RecordingConsumer()


def _loop() -> BatchLoop:
    return BatchLoop("test", {"group.id": "g"}, [TOPIC], lambda batch: None, max_batch=10, max_wait_s=0.0)


def _partitions(*numbers: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, n) for n in numbers]


class TestGroupMembership:
    def test_a_loop_that_has_not_been_assigned_yet_is_joining_and_holds_nothing(self) -> None:
        membership = _loop().membership
        assert membership.state is GroupState.JOINING
        assert not membership.holding

    def test_an_assignment_is_held_with_its_partition_count(self) -> None:
        loop = _loop()
        loop._on_assign(_consumer(), _partitions(0, 1, 2))
        assert loop.membership.state is GroupState.ASSIGNED
        assert loop.membership.partitions == 3 and loop.membership.holding

    def test_an_empty_assignment_is_held_too_idle_by_design(self) -> None:
        """More members than partitions (KEDA scaling out) leaves some with nothing: they have joined."""
        loop = _loop()
        loop._on_assign(_consumer(), [])
        assert loop.membership.state is GroupState.ASSIGNED
        assert loop.membership.partitions == 0 and loop.membership.holding

    def test_a_loop_revoked_and_not_assigned_again_holds_nothing(self) -> None:
        loop, consumer = _loop(), _consumer()
        loop._on_assign(consumer, _partitions(0, 1))
        loop._on_revoke(consumer, _partitions(0, 1))
        assert loop.membership.state is GroupState.REVOKED
        assert loop.membership.partitions == 0 and not loop.membership.holding

    def test_an_empty_assignment_revoked_is_revoked_too(self) -> None:
        loop, consumer = _loop(), _consumer()
        loop._on_assign(consumer, [])
        loop._on_revoke(consumer, [])
        assert loop.membership.state is GroupState.REVOKED

    def test_the_next_assignment_ends_the_rebalance_even_an_empty_one(self) -> None:
        loop, consumer = _loop(), _consumer()
        loop._on_assign(consumer, _partitions(0, 1))
        loop._on_revoke(consumer, _partitions(0, 1))
        revoked_since = loop.membership.since
        loop._on_assign(consumer, [])
        assert loop.membership.state is GroupState.ASSIGNED and loop.membership.partitions == 0
        assert loop.membership.since >= revoked_since

    def test_an_incremental_revoke_that_leaves_partitions_keeps_the_rest_held(self) -> None:
        """The cooperative protocol revokes only the partitions that move."""
        loop, consumer = _loop(), _consumer()
        loop._on_assign(consumer, _partitions(0, 1, 2))
        loop._on_revoke(consumer, _partitions(2))
        assert loop.membership.state is GroupState.ASSIGNED and loop.membership.partitions == 2

    def test_an_incremental_assignment_adds_to_what_is_held(self) -> None:
        loop, consumer = _loop(), _consumer()
        loop._on_assign(consumer, _partitions(0))
        loop._on_assign(consumer, _partitions(3))
        assert loop.membership.partitions == 2

    def test_a_loop_whose_thread_has_ended_is_stopped(self) -> None:
        loop = BatchLoop("test", {"group.id": "g"}, [TOPIC], lambda batch: None, max_batch=10, max_wait_s=0.0,
                         consumer_factory=lambda config: _consumer())
        loop.start()
        loop.stop(timeout_s=5)
        assert not loop.is_alive()
        assert loop.membership.state is GroupState.STOPPED and not loop.membership.holding
