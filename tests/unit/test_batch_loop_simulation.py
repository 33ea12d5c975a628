"""The batch loop, turn by turn, against a simulated librdkafka and group coordinator, through random
interleavings of fetches, acknowledgements, failures, rebalances, refused commits, crashes and restarts
(hypothesis' stateful testing).

The simulation models librdkafka's documented behaviour:
- a rebalance is an op on the consumer queue like a fetched record: one queued behind a record is served by
  the next call, after that record was handed out (poll() then consume(): served inside consume());
- an eager rebalance revokes the whole assignment, then assigns the new one; fetching restarts at each
  partition's committed offset, and the old assignment's fetched records are never returned after it;
- an incremental one (cooperative-sticky, KIP-848) revokes only the partitions that move and adds others;
  the partitions kept keep their fetch positions and their fetched records;
- one poll() serves a rebalance and goes on to return a record of the new assignment;
- the application's pause survives a revoke and a re-assign of the same partition (librdkafka#1849);
- an asynchronous commit's result arrives through on_commit, served by a later poll(); a refused commit
  (ILLEGAL_GENERATION) is not applied and not retried by librdkafka;
- the coordinator applies a commit of any partition from a current member.

Invariants, after every step: the group's committed offset never passes a record whose work is not durable;
a member commits only partitions it owns; a partition not owned has no commit frontier. At the end, with
the faults over, every record's work is durable, everything is committed and no partition stays paused.
"""

from __future__ import annotations

from typing import Any, ClassVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from streamer.runtime.batch_loop import BatchLoop
from tests.unit.test_batch_loop_commits import TOPIC, FakeMessage

PARTITIONS = 3
RECORDS = 12  # per partition
ALL = frozenset(range(PARTITIONS))


class Coordinator:
    """The group's committed offsets, and every commit sent: (the sender's assignment then, its offsets)."""

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}
        self.commits: list[tuple[frozenset[int], dict[int, int]]] = []


class SimulatedConsumer:
    def __init__(self, config: dict[str, Any], coordinator: Coordinator, incremental: bool) -> None:
        self._on_commit = config["on_commit"]
        self._incremental = incremental
        self._coordinator = coordinator
        self._callbacks: tuple[Any, Any] = (None, None)
        self.assigned: set[int] = set()
        self.paused: set[int] = set()
        self.position: dict[int, int] = {}
        self.queued: tuple[frozenset[int], frozenset[int]] | None = (frozenset(), ALL)  # (revoke, assign)
        self.behind_a_record = False
        self.refuse_commits = 0
        self.preferred = 0  # fetched first when it has records: librdkafka promises no order across partitions
        self._results: list[tuple[KafkaError | None, list[TopicPartition]]] = []

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self._callbacks = (on_assign, on_revoke)

    def poll(self, timeout: float) -> FakeMessage | None:
        if self.queued is not None and self.behind_a_record:
            self.behind_a_record = False
            return self._fetch()  # of the old assignment; the rebalance is served by the next call
        self._serve()
        return self._fetch()

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self._serve()
        taken: list[FakeMessage] = []
        while len(taken) < num_messages and (record := self._fetch()) is not None:
            taken.append(record)
        return taken

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        sent = {tp.partition: tp.offset for tp in offsets}
        self._coordinator.commits.append((frozenset(self.assigned), sent))
        if self.refuse_commits > 0:
            self.refuse_commits -= 1
            error = KafkaError(KafkaError.ILLEGAL_GENERATION)
            if not asynchronous:
                raise KafkaException(error)
            self._results.append((error, offsets))
            return
        self._coordinator.committed.update(sent)
        if asynchronous:
            self._results.append((None, offsets))

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in sorted(self.assigned)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def seek(self, tp: TopicPartition) -> None:
        self.position[tp.partition] = tp.offset

    def close(self) -> None:
        return None

    def _fetch(self) -> FakeMessage | None:
        for p in sorted(self.assigned, key=lambda q: (q != self.preferred, self.position[q], q)):
            if p not in self.paused and self.position[p] < RECORDS:
                self.position[p] += 1
                return FakeMessage(p, self.position[p] - 1)
        return None

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        return None  # the simulation's assign op already set the positions

    def _serve(self) -> None:
        on_assign, on_revoke = self._callbacks
        if self.queued is None:
            pass
        elif self._incremental:
            (revoke, add), self.queued = self.queued, None
            gone = sorted(revoke & self.assigned)
            if gone:
                on_revoke(self, [TopicPartition(TOPIC, p) for p in gone])
                self.assigned -= set(gone)
                for p in gone:  # its fetched records are dropped; if it comes back, it starts at its committed offset
                    del self.position[p]
            new = sorted(add - self.assigned)
            self.assigned |= set(new)
            self.position = {p: self.position.get(p, self._coordinator.committed.get(p, 0)) for p in self.assigned}
            on_assign(self, [TopicPartition(TOPIC, p) for p in new])  # the pause of one that comes back stays
        else:
            (_, new_assignment), self.queued = self.queued, None
            if self.assigned:
                on_revoke(self, self.assignment())
            self.assigned = set(new_assignment)
            self.paused &= self.assigned
            self.position = {p: self._coordinator.committed.get(p, 0) for p in self.assigned}
            on_assign(self, self.assignment())
        results, self._results = self._results, []
        for error, offsets in results:
            self._on_commit(error, offsets)


class SimulatedWork:
    """A batch's work (a `Pending`): unfinished until the simulation finishes it, or the loop waits for it
    (then it finishes as it was told to: durable unless told to fail)."""

    def __init__(self, records: list[tuple[int, int]], durable: set[tuple[int, int]]) -> None:
        self.records, self._durable = records, durable
        self.done, self.fails = False, False

    def finish(self, ok: bool) -> None:
        if not self.done:
            self.done, self.fails = True, not ok
            if ok:
                self._durable.update(self.records)

    def finished(self) -> bool:
        return self.done

    def wait(self, timeout_s: float) -> bool:
        self.finish(ok=not self.fails)
        return True

    def failure(self) -> Exception | None:
        return RuntimeError("the batch's work failed") if self.done and self.fails else None

    def succeeded(self) -> None:
        return None

    def again(self) -> None:
        return None


class BatchLoopSimulation(RuleBasedStateMachine):
    """The rules and invariants both rebalancing protocols share; the subclasses add their rebalance."""

    CONFIG: ClassVar[dict[str, str]] = {"group.id": "g"}
    INCREMENTAL = False

    def __init__(self) -> None:
        super().__init__()
        self.coordinator = Coordinator()
        self.durable: set[tuple[int, int]] = set()
        self.work: list[SimulatedWork] = []
        self.raise_next = False
        self.checked_commits = 0

    @initialize()
    def start(self) -> None:
        self._start_member()

    def _start_member(self) -> None:
        self.loop = BatchLoop("sim", self.CONFIG, [TOPIC], self._handle, max_batch=4, max_wait_s=0.0,
                              max_backoff_s=0.001, max_in_flight=3, commit_interval_s=0.0, busy_poll_s=0.0)
        self.consumer = SimulatedConsumer({"on_commit": self.loop._on_commit}, self.coordinator, self.INCREMENTAL)
        self.loop._subscribe(self.consumer)  # type: ignore[arg-type]

    def _handle(self, batch: Any) -> SimulatedWork:
        if self.raise_next:
            self.raise_next = False
            raise RuntimeError("the handler raised")
        work = SimulatedWork([(m.partition(), m.offset()) for m in batch], self.durable)
        self.work.append(work)
        return work

    @rule(turns=st.integers(1, 4))
    def turn(self, turns: int) -> None:
        for _ in range(turns):
            self.loop._step(self.consumer)  # type: ignore[arg-type]

    @rule(ok=st.booleans(), which=st.integers(0, 2))
    def finish_work(self, ok: bool, which: int) -> None:
        waiting = [w for w in self.work if not w.done]
        if waiting:
            waiting[min(which, len(waiting) - 1)].finish(ok)

    @rule()
    def handler_raises_next(self) -> None:
        self.raise_next = True

    @rule(partition=st.integers(0, PARTITIONS - 1))
    def fetch_first_from(self, partition: int) -> None:
        self.consumer.preferred = partition

    @rule()
    def coordinator_refuses_next_commit(self) -> None:
        self.consumer.refuse_commits += 1

    @rule()
    def crash_and_restart(self) -> None:
        """The process dies (nothing drained, nothing committed) and a new member starts from the group's offsets;
        work still unfinished is lost with it."""
        for work in self.work:
            work.done = True
        self._start_member()

    @invariant()
    def the_committed_offset_never_passes_work_that_is_not_durable(self) -> None:
        for p, committed in self.coordinator.committed.items():
            missing = [o for o in range(committed) if (p, o) not in self.durable]
            assert not missing, f"partition {p} committed to {committed}; not durable: {missing}"

    @invariant()
    def a_member_commits_only_partitions_it_owns(self) -> None:
        for owned, offsets in self.coordinator.commits[self.checked_commits:]:
            assert set(offsets) <= owned, f"committed {sorted(offsets)} while owning {sorted(owned)}"
        self.checked_commits = len(self.coordinator.commits)

    @invariant()
    def a_partition_not_owned_has_no_commit_frontier(self) -> None:
        for p in ALL - self.consumer.assigned:
            assert self.loop._book.frontier((TOPIC, p)) is None, f"partition {p} is marked, not owned"

    def teardown(self) -> None:
        """The faults end: one member owns every partition; every record is decided and committed."""
        if not hasattr(self, "loop"):
            return
        self.raise_next = False
        self.consumer.refuse_commits = 0
        self.consumer.queued, self.consumer.behind_a_record = (frozenset(), ALL), False
        for _ in range(500):
            done = all(self.coordinator.committed.get(p) == RECORDS for p in ALL) and not self.loop._in_flight
            if done and self.consumer.queued is None:
                break
            for work in self.work:  # acknowledgements arrive
                work.finish(ok=True)
            self.loop._step(self.consumer)  # type: ignore[arg-type]
            self.the_committed_offset_never_passes_work_that_is_not_durable()
        undecided = sorted({(p, o) for p in ALL for o in range(RECORDS)} - self.durable)
        assert not undecided, f"never made durable: {undecided}"
        assert self.coordinator.committed == {p: RECORDS for p in ALL}, self.coordinator.committed
        assert not self.consumer.paused, f"still paused with nothing left to redo: {sorted(self.consumer.paused)}"


PARTITION_SETS = st.frozensets(st.integers(0, PARTITIONS - 1))


class EagerRebalancing(BatchLoopSimulation):
    @rule(assignment=PARTITION_SETS, behind_a_record=st.booleans())
    def rebalance(self, assignment: frozenset[int], behind_a_record: bool) -> None:
        self.consumer.queued = (ALL, assignment)
        self.consumer.behind_a_record = behind_a_record


class CooperativeRebalancing(BatchLoopSimulation):
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
