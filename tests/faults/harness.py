"""Tools of the fault suite: load that remembers where each record landed, an account of what came out,
the promise checked against it, and numbers read from the worker (RSS, committed lag).

Everything waits on committed offsets and on records actually read, never on Tansu's high watermarks.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from streamer.config import Settings
from streamer.local.stack import WorkerProcess
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config, producer_config
from tests.conftest import REPO
from tests.integration.helpers import committed, header_bytes

Position = tuple[int, int]  # (partition, offset) of a record in the input topic


@dataclass(frozen=True)
class Payload:
    """One input record, what it must become (`expected_reason` None: a decision) and under which id."""

    key: bytes | None
    value: bytes | None
    expected_reason: str | None
    application_id: str | None = None  # set for the ones that must become a decision
    label: str = ""


def synthetic(count: int, invalid_every: int, seed: int) -> list[Payload]:
    """Synthetic applications, every `invalid_every`-th one invalid (about 1 % with 100)."""
    out = []
    for p in ApplicationFactory(seed=seed).mixed(count, invalid_every):
        app_id = p.key.decode() if p.expected_reason is None else None
        out.append(Payload(p.key, p.value, p.expected_reason, app_id))
    return out


class TrackedPublisher:
    """Publishes payloads (optionally at a rate, in a thread) and remembers each one's input position."""

    def __init__(self, settings: Settings, payloads: Sequence[Payload], rate_per_s: float | None = None) -> None:
        self.settings = settings
        self.payloads = list(payloads)
        self.rate_per_s = rate_per_s
        self.positions: list[Position | None] = [None] * len(self.payloads)
        self.failures: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> TrackedPublisher:
        # The upstream service's producer, with librdkafka's default delivery timeout (5 min), not the worker's
        # 30 s: a 30 s broker freeze must not fail the publishing side of the test.
        producer = Producer({**producer_config(self.settings), "linger.ms": 5, "message.max.bytes": 12_000_000,
                             "message.timeout.ms": 300_000})
        started = time.monotonic()
        for i, payload in enumerate(self.payloads):
            if self._stop.is_set():
                break
            while self.rate_per_s and (ahead := started + i / self.rate_per_s - time.monotonic()) > 0:
                producer.poll(ahead)  # returns early when a delivery report is served; hence the loop
            self._produce(producer, i, payload)
            self.sent = i + 1
            producer.poll(0)
        while len(producer) > 0:
            producer.flush(1.0)
        missing = sum(p is None for p in self.positions[: self.sent])
        if missing and not self.failures:
            self.failures.append(f"{missing} records without a delivery report")
        return self

    def start(self) -> TrackedPublisher:
        self._thread = threading.Thread(target=self.run, name="load", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout_s: float = 600.0) -> TrackedPublisher:
        assert self._thread is not None
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the load generator did not finish"
        assert not self.failures, f"the broker refused input records: {self.failures[:3]}"
        return self

    def stop(self) -> None:
        self._stop.set()

    def ends(self) -> dict[tuple[str, int], int]:
        """Per input partition, one past the highest offset acknowledged so far."""
        out: dict[tuple[str, int], int] = {}
        for pos in self.positions:
            if pos is not None:
                key = (self.settings.input_topic, pos[0])
                out[key] = max(out.get(key, 0), pos[1] + 1)
        return out

    def _produce(self, producer: Producer, i: int, payload: Payload) -> None:
        def on_delivery(error: object, message: Message) -> None:
            if error is not None:
                self.failures.append(str(error))
            else:
                self.positions[i] = (message.partition() or 0, message.offset() or 0)

        headers = self._headers(i)
        while True:
            try:
                if headers is None:
                    producer.produce(self.settings.input_topic, key=payload.key, value=payload.value,
                                     on_delivery=on_delivery)
                else:
                    producer.produce(self.settings.input_topic, key=payload.key, value=payload.value,
                                     headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)

    def _headers(self, i: int) -> list[tuple[str, str | bytes | None]] | None:
        """The headers the i-th payload is sent with; none here (HeaderedPublisher gives each its own)."""
        return None


def publish_all(settings: Settings, payloads: Sequence[Payload], rate_per_s: float | None = None) -> TrackedPublisher:
    publisher = TrackedPublisher(settings, payloads, rate_per_s).run()
    assert not publisher.failures, publisher.failures[:3]
    return publisher


def committed_lag(settings: Settings, group: str, ends: dict[tuple[str, int], int]) -> int:
    """Records produced (by our delivery reports) that `group` has not committed yet."""
    done = committed(settings, group, list(ends))
    return sum(max(0, end - max(done.get(k, 0), 0)) for k, end in ends.items())


def wait_committed(settings: Settings, group: str, ends: dict[tuple[str, int], int], timeout_s: float) -> float:
    """Block until `group` committed up to `ends`; returns the seconds it took."""
    started = time.monotonic()
    while True:
        done = committed(settings, group, list(ends))
        if all(done.get(k, -1) >= v for k, v in ends.items()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            behind = {k: (done.get(k), v) for k, v in ends.items() if done.get(k, -1) < v}
            raise TimeoutError(f"{group} is behind after {timeout_s}s (committed, expected): {behind}")
        time.sleep(0.25)


@dataclass
class Ledger:
    """Every decision and dead letter read from the output topics, and every record of the input topic."""

    decisions: list[Message]
    dead_letters: list[Message]
    inputs: list[Message] = field(default_factory=list)

    def decision_ids_by_application(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for record in self.decisions:
            doc = json.loads(record.value() or b"{}")
            out[doc["application_id"]].append(doc["decision_id"])
        return out

    def dead_letters_by_source(self) -> dict[Position, list[dict[str, bytes]]]:
        out: dict[Position, list[dict[str, bytes]]] = defaultdict(list)
        for record in self.dead_letters:
            headers = header_bytes(record)
            out[(int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))].append(headers)
        return out


def read_outputs(settings: Settings, quiet_s: float = 1.5) -> Ledger:
    """Read both output topics, and the input topic, until nothing new has arrived for `quiet_s`."""
    readers = [TopicReader(settings, t) for t in (settings.decision_topic, settings.dlq_topic, settings.input_topic)]
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s:
            if sum(r.read_more() for r in readers):
                quiet_since = time.monotonic()
        return Ledger(*(r.records for r in readers))
    finally:
        for r in readers:
            r.close()


def wait_transactions_closed(settings: Settings, timeout_s: float = 90.0) -> None:
    """Until no transaction is open on the output topics: a read_committed consumer stops at the last stable
    offset, before the first record of an open transaction, and a killed worker's transaction stays open
    until the broker aborts it (transaction.timeout.ms, then up to the broker's 10 s clean-up interval).
    librdkafka's watermark query answers the last stable offset for a read_committed consumer."""
    views = {level: Consumer({**common_config(settings), "group.id": "streamer-tally", "isolation.level": level})
             for level in ("read_committed", "read_uncommitted")}
    try:
        deadline = time.monotonic() + timeout_s
        for topic in (settings.decision_topic, settings.dlq_topic):
            for partition in views["read_committed"].list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                while (views["read_committed"].get_watermark_offsets(tp, timeout=10)[1]
                       != views["read_uncommitted"].get_watermark_offsets(tp, timeout=10)[1]):
                    assert time.monotonic() < deadline, f"a transaction on {topic}[{partition}] stayed open"
                    time.sleep(0.5)
    finally:
        for view in views.values():
            view.close()


def settle(settings: Settings, input_ends: dict[tuple[str, int], int], timeout_s: float = 180.0) -> Ledger:
    """Wait until the scorer committed all input and the audit committed all decisions; return the outputs."""
    wait_committed(settings, settings.scorer_group(), input_ends, timeout_s)
    if exactly_once():
        wait_transactions_closed(settings)
    ledger = read_outputs(settings)
    decision_ends: dict[tuple[str, int], int] = {}
    for m in ledger.decisions:
        key = (m.topic() or "", m.partition() or 0)
        decision_ends[key] = max(decision_ends.get(key, 0), (m.offset() or 0) + 1)
    wait_committed(settings, settings.audit_group(), decision_ends, timeout_s)
    return ledger


@dataclass
class Account:
    """What the promise is checked on, and the counts a report wants."""

    valid: int
    invalid: int
    decision_events: int
    duplicate_decision_events: int
    dead_letters: int
    duplicate_dead_letters: int
    audit_rows: int
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    input_copies: int = 0  # records the publisher's producer wrote twice (see input_positions)
    misreported_positions: int = 0  # its delivery reports that named a position not holding their payload

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "dead_letter_reasons": dict(self.dead_letter_reasons)}


def audit_rows(database_url: str) -> list[tuple[str, str]]:
    """(decision_id, application_id) of every audit row."""
    with psycopg.connect(database_url) as conn:
        return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT decision_id, application_id FROM decision_audit")]


@dataclass
class InputPositions:
    """Which payload each record of the input topic is; how many records are copies, and how many delivery
    reports named a position that does not hold their payload."""

    by_position: dict[Position, int]  # input position -> index in payloads
    copies: int = 0
    misreported: int = 0


def input_positions(ledger: Ledger, payloads: Sequence[Payload], reported: Sequence[Position | None]) -> InputPositions:
    """The input topic as read back, each record matched to its payload.

    The promise is about the records in the input log, and the publisher's delivery reports are not always
    that log. After a frozen broker (CI, 2026-12-02) three invalid payloads were dead-lettered at the very
    positions they hash and count to, while the reports had given them other positions that were dead-lettered
    too: the log held a second copy of each. Which path wrote the copies is not known (7 runs here did not
    reproduce it); librdkafka also reports a send it finds already written (DUPLICATE_SEQUENCE_NUMBER) with no
    offset at all (rdkafka_request.c). So each record is matched to its payload by content (the report breaks
    ties between payloads published twice alike); copies and wrong reports are counted, as the publisher's
    doing. Every acknowledged payload must be in the log, and nothing unpublished may be.
    """
    reported_at = {pos: i for i, pos in enumerate(reported) if pos is not None and pos[1] >= 0}
    log = {(m.partition() or 0, m.offset() or 0): m for m in ledger.inputs}
    if not log:  # a broker that lost its log (Tansu restarted); the reports are all there is
        return InputPositions(reported_at)
    by_content: dict[tuple[bytes | None, bytes | None], int] = {}
    for i, p in enumerate(payloads):
        by_content.setdefault((p.key, p.value), i)
    by_position: dict[Position, int] = {}
    unexplained: list[Position] = []
    for pos, m in log.items():
        content = (m.key(), m.value())
        match = reported_at.get(pos)
        if match is None or (payloads[match].key, payloads[match].value) != content:
            match = by_content.get(content)
        if match is None:
            unexplained.append(pos)
        else:
            by_position[pos] = match
    assert not unexplained, f"input records that no payload explains: {unexplained[:5]}"
    acknowledged = {i for i, pos in enumerate(reported) if pos is not None}
    absent = sorted(acknowledged - set(by_position.values()))
    assert not absent, f"{len(absent)} acknowledged payloads are not in the input log, e.g. {absent[:5]}"
    return InputPositions(by_position, copies=len(by_position) - len(set(by_position.values())),
                          misreported=sum(by_position.get(pos) != i for pos, i in reported_at.items()))


def check_promise(
    ledger: Ledger, payloads: Sequence[Payload], positions: Sequence[Position | None], database_url: str,
    extra_audited: Iterable[str] = (),
) -> Account:
    """Issue 5's promise, asserted record by record; duplicates from redelivery are counted, not failed.

    - every valid application has >= 1 decision event, all of its events carry one decision_id, and no
      decision exists for anything else;
    - every invalid payload has >= 1 dead letter, found by its input position; all copies carry the reason
      it must get (a copy is a redelivery of the same record, since the position identifies the record);
      no valid payload is dead-lettered;
    - the audit has exactly one row per valid application, under the decision events' decision_id.
    """
    assert all(p is not None for p in positions), "some payloads were never acknowledged by the broker"
    assert all(p.application_id is not None for p in payloads if p.expected_reason is None)
    valid = {p.application_id: p for p in payloads if p.expected_reason is None and p.application_id is not None}
    inputs = input_positions(ledger, payloads, positions)
    invalid = {pos: payloads[i] for pos, i in inputs.by_position.items() if payloads[i].expected_reason is not None}
    by_app = ledger.decision_ids_by_application()
    missing = set(valid) - set(by_app)
    assert not missing, f"{len(missing)} valid applications got no decision, e.g. {sorted(missing)[:5]}"
    unexpected = set(by_app) - set(valid)
    assert not unexpected, f"decisions for applications that are not valid: {sorted(unexpected)[:5]}"
    split = {a: ids for a, ids in by_app.items() if len(set(ids)) != 1}
    assert not split, f"applications whose decision events carry different ids: {list(split.items())[:3]}"

    by_source = ledger.dead_letters_by_source()
    not_dead = set(invalid) - set(by_source)
    labels = [invalid[p].label for p in sorted(not_dead)][:5]
    assert not not_dead, f"{len(not_dead)} invalid payloads have no dead letter, e.g. {labels}"
    wrongly_dead = set(by_source) - set(invalid)
    examples = [by_source[p][0] for p in sorted(wrongly_dead)][:3]
    assert not wrongly_dead, f"dead letters for records that are not invalid payloads: {examples}"
    reasons: Counter[str] = Counter()
    for pos, copies in by_source.items():
        want = invalid[pos].expected_reason
        got = {c["dlq.reason"].decode() for c in copies}
        assert got == {want}, f"payload {invalid[pos].label!r} at {pos}: reason {got}, expected {want}"
        assert all(c["dlq.stage"] == b"validation" for c in copies), copies
        reasons[want or ""] += 1

    rows = audit_rows(database_url)
    row_apps = Counter(app for _, app in rows)
    doubled = [a for a, n in row_apps.items() if n > 1]
    assert not doubled, f"applications with more than one audit row: {doubled[:5]}"
    expected_rows = set(valid) | set(extra_audited)
    assert set(row_apps) == expected_rows, (
        f"audit rows differ: {len(set(row_apps) - expected_rows)} extra, {len(expected_rows - set(row_apps))} missing"
    )
    wrong_id = [(d, a) for d, a in rows if a in by_app and d != by_app[a][0]]
    assert not wrong_id, f"audit rows whose decision_id is not the published one: {wrong_id[:3]}"

    decision_events = sum(len(ids) for ids in by_app.values())
    dead_letters = sum(len(c) for c in by_source.values())
    if exactly_once():  # what read_committed consumers see: a decision per valid record, a dead letter per invalid
        # an application published twice, or written twice by the publisher's producer: two
        valid_records = sum(payloads[i].expected_reason is None for i in inputs.by_position.values())
        assert decision_events == valid_records, f"{decision_events - valid_records} duplicate decision events"
        assert dead_letters == len(by_source), f"{dead_letters - len(by_source)} duplicate dead letters"
    return Account(
        valid=len(valid), invalid=len(invalid), decision_events=decision_events,
        duplicate_decision_events=decision_events - len(by_app), dead_letters=dead_letters,
        duplicate_dead_letters=dead_letters - len(by_source), audit_rows=len(rows), dead_letter_reasons=reasons,
        input_copies=inputs.copies, misreported_positions=inputs.misreported,
    )


def records_of_aborted_transactions(settings: Settings) -> int:
    """Decision records a read_uncommitted consumer sees and a read_committed one does not: the output of
    transactions that were aborted (the trace of a kill or a fence landing mid-transaction)."""
    counts = []
    for committed_only in (True, False):
        reader = TopicReader(settings, settings.decision_topic, read_committed=committed_only)
        try:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < 1.5:  # the first fetches may come back empty
                if reader.read_more():
                    quiet_since = time.monotonic()
            counts.append(len(reader.records))
        finally:
            reader.close()
    return counts[1] - counts[0]


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def log_events(worker_log: Path) -> Counter[str]:
    """How often each structured event name appears in a worker's JSON log."""
    events: Counter[str] = Counter()
    for line in worker_log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events[str(json.loads(line).get("event"))] += 1
            except ValueError:
                continue
    return events


def log_story(worker_log: Path, limit: int = 40) -> str:
    """The worker's last `limit` events but the per-batch ones, one per line: what a failure message shows."""
    lines = []
    for line in worker_log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") in ("batch_scored", "audit_batch_written"):
            continue
        fields = {k: v for k, v in event.items() if k not in ("event", "timestamp", "level", "logger")}
        lines.append(f"{str(event.get('timestamp', ''))[11:23]} {event.get('event')} {fields}"[:300])
    return "\n".join(lines[-limit:])


GUARANTEE = "exactly_once"  # set per test by the `guarantee` fixture (tests/faults/conftest.py)


def exactly_once() -> bool:
    return GUARANTEE == "exactly_once"


def spawn(env: dict[str, str], log: Path, workers: list[WorkerProcess], wait: bool = True) -> WorkerProcess:
    """A worker with its own log file, in the test's processing guarantee, registered for the fixtures' clean-up."""
    worker = WorkerProcess({"STREAMER_PROCESSING_GUARANTEE": GUARANTEE, **env}, log, cwd=REPO).start()
    workers.append(worker)
    if wait:
        worker.wait_ready()
    return worker


def report(size_name: str, test: str, numbers: dict[str, object]) -> None:
    """Print the numbers; in soak mode also keep them in bench/results/faults-<broker>-<test>.json."""
    broker = _broker_of_current_test()
    print(f"\n[faults:{size_name}:{broker}:{GUARANTEE}] {test}: {json.dumps(numbers, sort_keys=True, default=str)}")
    if size_name == "soak":
        out = REPO / "bench" / "results" / f"faults-{broker}-{GUARANTEE}-{test}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"test": test, "size": size_name, "broker": broker, "guarantee": GUARANTEE,
                                   **numbers}, indent=2,
                                  sort_keys=True, default=str) + "\n")


def _broker_of_current_test() -> str:
    """`kafka` or `tansu`, from the running test's id (e.g. `test_x[kafka-soak]`), which pytest exports."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    params = current[current.find("[") + 1 : current.find("]")].split("-") if "[" in current else []
    return next((p for p in params if p in ("kafka", "tansu")), "kafka")


def renamed_copies(payloads: Sequence[Payload], count: int, suffix: str) -> list[Payload]:
    """`count` more payloads, cycling through `payloads`, far cheaper to make than new ones (the overload and
    poison tests need hundreds of thousands): a valid one is copied under a new application id (in its value,
    and its key where the key was the id), so each still gets a decision of its own; an invalid one is copied
    as it is, a record of its own all the same (outcomes are traced by input position). A valid payload whose
    id is not found exactly once in its value is not copied."""
    sources = [
        p for p in payloads
        if p.application_id is None or (p.value or b"").count(f'"{p.application_id}"'.encode()) == 1
    ]
    assert sources, "nothing to copy"
    out: list[Payload] = []
    for n in range(count):
        p = sources[n % len(sources)]
        if p.application_id is None:
            out.append(p)
            continue
        new_id = f"{p.application_id}.{suffix}{n}"
        value = (p.value or b"").replace(f'"{p.application_id}"'.encode(), f'"{new_id}"'.encode())
        key = new_id.encode() if p.key == p.application_id.encode() else p.key
        out.append(Payload(key, value, None, new_id, p.label))
    return out


def idle_rss_mb(pid: int, readings: int = 3, every_s: float = 0.5) -> float:
    """The median of a few RSS readings `every_s` apart, for a worker that has nothing left to do."""
    found = []
    for _ in range(readings):
        time.sleep(every_s)
        found.append(rss_mb(pid))
    return sorted(found)[len(found) // 2]


Headers = list[tuple[str, bytes | None]]


class HeaderedPublisher(TrackedPublisher):
    """A TrackedPublisher that sends each payload with headers of its own, as an upstream service would."""

    def __init__(self, settings: Settings, payloads: Sequence[Payload], headers: Sequence[Headers]) -> None:
        super().__init__(settings, payloads)
        assert len(headers) == len(self.payloads), "one list of headers per payload"
        self.headers = list(headers)

    def _headers(self, i: int) -> list[tuple[str, str | bytes | None]] | None:
        return list(self.headers[i])


def publish_all_with_headers(
    settings: Settings, payloads: Sequence[Payload], headers: Sequence[Headers]
) -> TrackedPublisher:
    publisher = HeaderedPublisher(settings, payloads, headers).run()
    assert not publisher.failures, publisher.failures[:3]
    return publisher


def dead_letter_records_by_source(ledger: Ledger) -> dict[Position, list[Message]]:
    """The dead letters themselves (key, value, headers), by the input position they name."""
    out: dict[Position, list[Message]] = defaultdict(list)
    for record in ledger.dead_letters:
        headers = header_bytes(record)
        out[(int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))].append(record)
    return out
