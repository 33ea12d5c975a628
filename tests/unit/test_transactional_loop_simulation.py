"""The transactional loop (exactly_once), turn by turn, against the simulated librdkafka consumer and group
coordinator of test_batch_loop_simulation plus a simulated transactional producer, through random
interleavings of fetches, failed deliveries, refused commits, fencing, handler errors, rebalances, crashes
and restarts.

The producer models librdkafka's documented transactional API (rdkafka.h): records produced and offsets sent
in a transaction take effect only when commit_transaction() succeeds, and then together; abort_transaction()
and a crash discard both; a failed delivery makes commit_transaction() fail with an error for which
txn_requires_abort() is true; the broker refuses offsets sent with the group metadata of an older generation
(ILLEGAL_GENERATION, abortable): a member the group moved past is fenced.

Invariants, after every step: no input record's decision is visible twice (exactly once); the committed offset
never passes a record whose decision is not visible. At the end, with the faults over, every record's decision
is visible exactly once and everything is committed.

Broken on purpose, it fails: without the seek back after a transaction dropped in a turn (eager), or after one
dropped at an incremental revoke (the partitions kept would commit over its records).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from streamer.runtime.publisher import OutboundRecord
from streamer.runtime.transactions import Decided, TransactionalLoop
from tests.unit.test_batch_loop_commits import TOPIC
from tests.unit.test_batch_loop_simulation import ALL, PARTITION_SETS, RECORDS, Coordinator, SimulatedConsumer


class GroupCoordinator(Coordinator):
    def __init__(self) -> None:
        super().__init__()
        self.generation = 0


class GenerationalConsumer(SimulatedConsumer):
    """A consumer whose group metadata carries the generation it last joined."""

    def __init__(self, config: dict[str, Any], coordinator: GroupCoordinator, incremental: bool) -> None:
        super().__init__(config, coordinator, incremental)
        self.group = coordinator
        self.generation = coordinator.generation
        self.unnoticed = 0  # polls before a fenced member notices the rebalance that fenced it
        self.fenced = False  # until it rejoins: its revoke callback still carries the old generation

    def consumer_group_metadata(self) -> int:
        return self.generation

    def _serve(self) -> None:
        if self.queued is None:
            super()._serve()
            return
        if self.unnoticed > 0:
            self.unnoticed -= 1
            return
        if not self.fenced:
            self.generation = self.group.generation  # a member in good standing revokes in the new generation
        super()._serve()
        self.generation, self.fenced = self.group.generation, False


class SimulatedTransactionalProducer:
    def __init__(self, sim: TransactionalLoopSimulation) -> None:
        self._sim = sim
        self._open: list[tuple[int, int]] | None = None
        self._offsets: dict[int, int] = {}
        self._generation = -1
        self._reports: list[Any] = []
        self._delivery_failed = False

    def init_transactions(self, timeout: float) -> None:
        self._open = None

    def begin_transaction(self) -> None:
        if self._open is not None:
            raise KafkaException(KafkaError(KafkaError._STATE, "a transaction is already open"))
        self._open, self._offsets, self._delivery_failed = [], {}, False

    def produce(self, topic: str, value: bytes, key: Any, headers: Any, on_delivery: Any) -> None:
        if self._open is None:
            raise KafkaException(KafkaError(KafkaError._STATE, "produce outside a transaction"))
        partition, offset = (int(x) for x in value.split(b":"))
        self._open.append((partition, offset))
        failed = self._sim.fail_next_delivery
        self._sim.fail_next_delivery = False
        self._delivery_failed |= failed
        self._reports.append((on_delivery, KafkaError(KafkaError._MSG_TIMED_OUT) if failed else None))

    def poll(self, timeout: float) -> int:
        reports, self._reports = self._reports, []
        for callback, error in reports:
            callback(error, _Delivered())
        return len(reports)

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], metadata: int, timeout: float) -> None:
        self._offsets = {tp.partition: tp.offset for tp in offsets}
        self._generation = metadata

    def commit_transaction(self, timeout: float) -> None:
        self.poll(0)
        abortable = KafkaError(KafkaError._MSG_TIMED_OUT, "delivery failed", txn_requires_abort=True)
        if self._delivery_failed:
            raise KafkaException(abortable)
        if self._sim.refuse_next_commit:
            self._sim.refuse_next_commit = False
            raise KafkaException(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS, "refused", txn_requires_abort=True))
        if self._generation != self._sim.coordinator.generation:
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION, "fenced", txn_requires_abort=True))
        if self._open is None:
            raise KafkaException(KafkaError(KafkaError._STATE, "no transaction open"))
        self._sim.visible.extend(self._open)
        self._sim.coordinator.commits.append((frozenset(self._sim.consumer.assigned), self._offsets))
        self._sim.coordinator.committed.update(self._offsets)
        self._open = None

    def abort_transaction(self, timeout: float) -> None:
        self._open = None


class _Delivered:
    def topic(self) -> str:
        return "decisions"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


class TransactionalLoopSimulation(RuleBasedStateMachine):
    CONFIG: ClassVar[dict[str, str]] = {"group.id": "g"}
    INCREMENTAL = False

    def __init__(self) -> None:
        super().__init__()
        self.coordinator = GroupCoordinator()
        self.visible: list[tuple[int, int]] = []  # input (partition, offset) of each decision read_committed
        self.fail_next_delivery = False
        self.refuse_next_commit = False
        self.raise_next = False

    @initialize()
    def start(self) -> None:
        self._start_member()

    def _start_member(self) -> None:
        self.loop = TransactionalLoop(
            "sim", self.CONFIG, {}, [TOPIC], self._decide, max_batch=4, max_wait_s=0.0, commit_interval_s=3600.0,
            max_backoff_s=0.001, producer_factory=lambda config: SimulatedTransactionalProducer(self),  # type: ignore[arg-type,return-value]
        )
        self.consumer = GenerationalConsumer({"on_commit": self.loop._on_commit}, self.coordinator, self.INCREMENTAL)
        self.loop._subscribe(self.consumer)  # type: ignore[arg-type]

    def _decide(self, batch: Sequence[Message]) -> Decided:
        if self.raise_next:
            self.raise_next = False
            raise RuntimeError("the handler raised")
        return Decided([OutboundRecord("decisions", None, b"%d:%d" % (m.partition() or 0, m.offset() or 0))
                        for m in batch])

    @rule(turns=st.integers(1, 4))
    def turn(self, turns: int) -> None:
        for _ in range(turns):
            self.loop._step(self.consumer)  # type: ignore[arg-type]

    @rule()
    def commit_interval_passes(self) -> None:
        """The open transaction is due: the next turn commits it (otherwise it stays open across turns, and a
        rebalance, a fence or a crash finds it open)."""
        if self.loop._txn is not None:
            self.loop._txn.started = float("-inf")

    @rule()
    def next_delivery_fails(self) -> None:
        self.fail_next_delivery = True

    @rule()
    def broker_refuses_next_commit(self) -> None:
        self.refuse_next_commit = True

    @rule()
    def handler_raises_next(self) -> None:
        self.raise_next = True

    @rule(partition=st.integers(0, len(ALL) - 1))
    def fetch_first_from(self, partition: int) -> None:
        self.consumer.preferred = partition

    @rule(revoke=PARTITION_SETS, add=PARTITION_SETS, unnoticed=st.integers(0, 3))
    def fenced(self, revoke: frozenset[int], add: frozenset[int], unnoticed: int) -> None:
        """The group moved to a new generation without this member noticing for a few polls (it stalled past its
        session, or a rebalance is in progress): offsets it sends meanwhile, and in its revoke callback, are
        refused. Eager: it then loses everything; incremental: the rebalance may leave it some partitions."""
        self.coordinator.generation += 1
        self.consumer.queued = (revoke, add) if self.INCREMENTAL else (ALL, add)
        self.consumer.unnoticed, self.consumer.fenced = unnoticed, True

    @rule()
    def crash_and_restart(self) -> None:
        """The process dies: its open transaction is never committed (the broker aborts it); a new member starts
        from the group's offsets."""
        self.coordinator.generation += 1
        self._start_member()

    @invariant()
    def no_decision_is_visible_twice(self) -> None:
        twice = [record for record, n in Counter(self.visible).items() if n > 1]
        assert not twice, f"decisions visible twice: {twice}"

    @invariant()
    def the_committed_offset_never_passes_a_record_whose_decision_is_not_visible(self) -> None:
        visible = set(self.visible)
        for p, committed in self.coordinator.committed.items():
            missing = [o for o in range(committed) if (p, o) not in visible]
            assert not missing, f"partition {p} committed to {committed}; no decision visible for {missing}"

    def teardown(self) -> None:
        if not hasattr(self, "loop"):
            return
        self.fail_next_delivery = self.refuse_next_commit = self.raise_next = False
        self.consumer.queued, self.consumer.behind_a_record = (frozenset(), ALL), False
        self.loop._commit_interval_s = 0.0
        for _ in range(500):
            if all(self.coordinator.committed.get(p) == RECORDS for p in ALL) and self.consumer.queued is None:
                break
            self.loop._step(self.consumer)  # type: ignore[arg-type]
            self.no_decision_is_visible_twice()
        assert sorted(self.visible) == [(p, o) for p in sorted(ALL) for o in range(RECORDS)]
        assert self.coordinator.committed == {p: RECORDS for p in ALL}, self.coordinator.committed


class EagerRebalancing(TransactionalLoopSimulation):
    @rule(assignment=PARTITION_SETS, behind_a_record=st.booleans())
    def rebalance(self, assignment: frozenset[int], behind_a_record: bool) -> None:
        self.consumer.queued = (ALL, assignment)
        self.consumer.behind_a_record = behind_a_record


class CooperativeRebalancing(TransactionalLoopSimulation):
    CONFIG: ClassVar[dict[str, str]] = {"group.id": "g", "partition.assignment.strategy": "cooperative-sticky"}
    INCREMENTAL = True

    @rule(revoke=PARTITION_SETS, add=PARTITION_SETS, behind_a_record=st.booleans())
    def rebalance(self, revoke: frozenset[int], add: frozenset[int], behind_a_record: bool) -> None:
        self.consumer.queued = (revoke, add)
        self.consumer.behind_a_record = behind_a_record


SIMULATION = settings(max_examples=200, stateful_step_count=30, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])
EagerRebalancing.TestCase.settings = SIMULATION
CooperativeRebalancing.TestCase.settings = SIMULATION
TestEagerRebalancing = EagerRebalancing.TestCase
TestCooperativeRebalancing = CooperativeRebalancing.TestCase
