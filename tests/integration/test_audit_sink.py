"""The audit sink against a real PostgreSQL: idempotent rows, poison refused, outages reported."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest

from schemas import Decision, decision_id_for
from streamer.audit.sink import AuditSink, AuditUnavailable, DecisionEvent
from tests.conftest import TANSU_ONLY, Isolated

pytestmark = [pytest.mark.integration, TANSU_ONLY]  # Postgres only: one broker is enough


def _decision(application_id: str, **overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schema_version": 1,
        "decision_id": decision_id_for(application_id, "m", "1"),
        "application_id": application_id,
        "outcome": "decline",
        "probability_of_default": 0.71,
        "model": {"name": "m", "version": "1", "sha256": "b" * 64},
        "policy_version": "pd-thresholds-1",
        "reason_codes": [{"code": "SAVINGS", "feature": "savings", "description": 'Low "savings" \\ é'}],
        "decided_at": "2026-11-22T12:00:00.5Z",
        "latency_ms": 12.5,
    }
    doc.update(overrides)
    return doc


def _input_values(poison: bytes) -> list[str]:
    """What a reason must not quote: the record's text, or every string value of 3+ characters in it."""
    try:
        doc = json.loads(poison)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's parser goes
        return [poison.decode("utf-8", "replace")]
    strings: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 3:
            strings.append(value)

    walk(doc)
    return strings


def _event(value: bytes, offset: int) -> DecisionEvent:
    return DecisionEvent("loan-decisions", 3, offset, value)


@pytest.fixture
def sink(isolated: Isolated) -> Iterator[AuditSink]:
    audit = AuditSink(isolated.settings.database_url.get_secret_value())
    yield audit
    audit.close()


@contextmanager
def connection_lost_mid_write(
    database_url: str, decision_id: str, timeout_s: float = 30.0
) -> Iterator[Callable[[], None]]:
    """A Postgres connection lost in the middle of a batch's transaction.

    Another transaction holds an uncommitted claim on `decision_id`, so a write that includes it stops on
    that row lock inside its own transaction; `cut()` waits until a backend waits there and terminates it.
    The claim is rolled back on leaving, whatever happened.
    """
    with psycopg.connect(database_url) as blocker, psycopg.connect(database_url, autocommit=True) as admin:
        blocker.execute("INSERT INTO decision_audit_ids (decision_id, decided_at) VALUES (%s, now())", [decision_id])
        blocker_pid = blocker.info.backend_pid

        def cut() -> None:
            deadline = time.monotonic() + timeout_s
            while not (waiting := admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND pid <> %s", [blocker_pid]).fetchall()):
                assert time.monotonic() < deadline, f"no write waited on the claim of {decision_id} in {timeout_s}s"
                time.sleep(0.05)
            for (pid,) in waiting:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])

        try:
            yield cut
        finally:
            blocker.rollback()


def _rows(isolated: Isolated) -> list[tuple[object, ...]]:
    with psycopg.connect(isolated.settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT application_id, outcome, probability_of_default, model_sha256, reason_codes, decided_at,"
            " latency_ms, source_partition, source_offset FROM decision_audit ORDER BY source_offset"
        ).fetchall()


class TestAuditSink:
    def test_a_decision_becomes_a_row_with_every_field(self, isolated: Isolated, sink: AuditSink) -> None:
        doc = _decision("app-1")
        result = sink.write([_event(json.dumps(doc).encode(), 40)])
        assert result.inserted == 1 and result.refused == []
        [row] = _rows(isolated)
        decision = Decision.model_validate_json(json.dumps(doc))
        assert row[:4] == ("app-1", "decline", 0.71, "b" * 64)
        assert row[4] == [r.model_dump() for r in decision.reason_codes]
        assert row[5] == decision.decided_at
        assert row[6:] == (12.5, 3, 40)

    def test_the_same_decision_twice_in_a_batch_or_across_batches_is_one_row(
        self, isolated: Isolated, sink: AuditSink
    ) -> None:
        value = json.dumps(_decision("app-2")).encode()
        assert sink.write([_event(value, 1), _event(value, 2)]).inserted == 1
        assert sink.write([_event(value, 3)]).inserted == 0
        assert len(_rows(isolated)) == 1

    @pytest.mark.parametrize(
        "poison",
        [
            b"not json at all",
            b'{"truncated": ',
            json.dumps(_decision("app-v2", schema_version=2)).encode(),
            json.dumps(_decision("app-bad-outcome", outcome="maybe")).encode(),
            json.dumps(_decision("app-sha", model={"name": "m", "version": "1", "sha256": "xyz"})).encode(),
            *(json.dumps(_decision("app-sha", model={"name": "m", "version": "1", "sha256": sha})).encode()
              for sha in ("A" * 64, "g" * 64, "a" * 63, "a" * 63 + " ", "a" * 65)),
            json.dumps({k: v for k, v in _decision("app-missing").items() if k != "decided_at"}).encode(),
            json.dumps(_decision("app-nul", policy_version="a\u0000b")).encode(),
            b'{"decision_id": "\xff\xfe"}',
            json.dumps(_decision("app-5", reason_codes=[_decision("x")["reason_codes"][0]] * 5)).encode(),  # type: ignore[index]
        ],
    )
    def test_a_record_that_is_not_a_decision_v1_is_returned_and_the_rest_of_the_batch_is_written(
        self, isolated: Isolated, sink: AuditSink, poison: bytes
    ) -> None:
        good = [_event(json.dumps(_decision(f"ok-{i}")).encode(), i) for i in range(3)]
        bad = _event(poison, 99)
        result = sink.write([good[0], bad, *good[1:]])
        assert result.inserted == 3
        assert [event.offset for event, _ in result.refused] == [99]
        reason = result.refused[0][1]
        # Refused by the checks in Python (streamer/audit/rows.py), or by Postgres (a NUL in a text column)
        assert re.fullmatch(r"not a Decision v1; (not JSON|not an object|field [a-z0-9_.]+( missing)?)"
                            r"|[A-Za-z]+ \(SQLSTATE (22|23)\w{3}\)(; [a-z]+ \S+)*", reason), reason
        echoed = [value for value in _input_values(poison) if value in reason]
        assert echoed == [], f"the reason (a dead letter's dlq.error) quotes the input: {reason!r}"
        assert len(_rows(isolated)) == 3

    @pytest.mark.parametrize(
        ("poison", "refused_by"),
        [
            # A btree row over the index's ~2.7 KB limit (54000); random text, so Postgres cannot compress it.
            (json.dumps(_decision(secrets.token_hex(2000))).encode(), r"[A-Za-z]+ \(SQLSTATE 54\w{3}\)(; [a-z]+ \S+)*"),
            # Nesting deeper than Postgres's stack allows for its JSON parser (54001, statement too complex): since
            # the decisions are parsed in Python, orjson's own depth limit (1,024) refuses it before Postgres.
            (json.dumps(_decision("app-deep", reason_codes=[])).replace('[]', "[" * 100_000 + "]" * 100_000).encode(),
             r"not a Decision v1; not JSON"),
        ],
        ids=["btree_row_too_big", "nested_too_deep"],
    )
    def test_a_record_over_a_postgres_limit_is_refused_as_data_not_retried_as_an_outage(
        self, isolated: Isolated, sink: AuditSink, poison: bytes, refused_by: str
    ) -> None:
        good = [_event(json.dumps(_decision(f"ok-{i}")).encode(), i) for i in range(3)]
        result = sink.write([good[0], _event(poison, 99), *good[1:]])
        assert result.inserted == 3
        assert [event.offset for event, _ in result.refused] == [99]
        reason = result.refused[0][1]
        assert re.fullmatch(refused_by, reason), reason
        assert [value for value in _input_values(poison) if value in reason] == []
        assert len(_rows(isolated)) == 3

    def test_an_unreachable_database_raises_audit_unavailable(self) -> None:
        unreachable = AuditSink("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout_s=1)
        with pytest.raises(AuditUnavailable):
            unreachable.write([_event(json.dumps(_decision("app-3")).encode(), 1)])

    def test_a_connection_lost_mid_batch_raises_audit_unavailable_commits_none_of_it_and_the_retry_writes_it(
        self, isolated: Isolated, sink: AuditSink
    ) -> None:
        assert sink.write([_event(json.dumps(_decision("before")).encode(), 1)]).inserted == 1
        batch = [_event(json.dumps(_decision(f"lost-{i}")).encode(), 10 + i) for i in range(5)]
        with ThreadPoolExecutor(1) as pool, connection_lost_mid_write(
            isolated.settings.database_url.get_secret_value(), decision_id_for("lost-4", "m", "1")
        ) as cut:
            write = pool.submit(sink.write, batch)
            cut()
            with pytest.raises(AuditUnavailable):
                write.result(timeout=30)
        assert [row[0] for row in _rows(isolated)] == ["before"], "rows of the failed batch were committed"
        assert sink.write(batch).inserted == 5, "the retry did not write the whole batch"
        assert [row[0] for row in _rows(isolated)] == ["before", *(f"lost-{i}" for i in range(5))]


class TestStoredOffsets:
    """The consumer offsets a write is given are stored in its transaction (audit_consumer_offsets)."""

    def _stored(self, isolated: Isolated) -> list[tuple[object, ...]]:
        with psycopg.connect(isolated.settings.database_url.get_secret_value()) as conn:
            return conn.execute("SELECT consumer_group, topic, partition, next_offset FROM audit_consumer_offsets"
                                " ORDER BY 1, 2, 3").fetchall()

    def test_offsets_are_stored_with_the_rows_and_only_move_forward(self, isolated: Isolated) -> None:
        sink = AuditSink(isolated.settings.database_url.get_secret_value(), consumer_group="g")
        try:
            sink.write([_event(json.dumps(_decision("a")).encode(), 1)], {("t", 0): 10, ("t", 1): 5})
            sink.write([_event(json.dumps(_decision("b")).encode(), 2)], {("t", 0): 7, ("t", 1): 6})
        finally:
            sink.close()
        assert self._stored(isolated) == [("g", "t", 0, 10), ("g", "t", 1, 6)]

    def test_a_batch_that_fails_stores_no_offsets(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        sink = AuditSink(url, consumer_group="g")
        try:
            sink.write([_event(json.dumps(_decision("before")).encode(), 1)], {("t", 3): 2})
            batch = [_event(json.dumps(_decision(f"lost-{i}")).encode(), 10 + i) for i in range(3)]
            with ThreadPoolExecutor(1) as pool, connection_lost_mid_write(
                url, decision_id_for("lost-2", "m", "1")
            ) as cut:
                write = pool.submit(sink.write, batch, {("t", 3): 13})
                cut()
                with pytest.raises(AuditUnavailable):
                    write.result(timeout=30)
            assert self._stored(isolated) == [("g", "t", 3, 2)]
            assert sink.write(batch, {("t", 3): 13}).offsets_stored
        finally:
            sink.close()
        assert self._stored(isolated) == [("g", "t", 3, 13)]


@contextmanager
def backend_frozen(sink_connection_pid: int) -> Iterator[None]:
    """The Postgres backend serving a connection stopped (SIGSTOP), as a database that no longer answers
    while its host still acknowledges every packet; resumed on leaving, whatever happened."""
    os.kill(sink_connection_pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(sink_connection_pid, signal.SIGCONT)


class TestADatabaseThatStopsAnswering:
    def test_a_write_to_a_frozen_backend_fails_after_the_write_timeout_and_the_next_goes_through(
        self, isolated: Isolated
    ) -> None:
        sink = AuditSink(isolated.settings.database_url.get_secret_value(), write_timeout_s=1.0)
        try:
            assert sink.write([_event(json.dumps(_decision("before")).encode(), 1)]).inserted == 1
            batch = [_event(json.dumps(_decision(f"frozen-{i}")).encode(), 10 + i) for i in range(3)]
            with ThreadPoolExecutor(1) as pool, backend_frozen(sink.backend_pid()):
                write = pool.submit(sink.write, batch)
                # Without a timeout of its own the write would wait for as long as the backend stays frozen.
                with pytest.raises(AuditUnavailable):
                    write.result(timeout=20)
                assert sink.write(batch).inserted == 3, "the retry on a new connection did not write the batch"
            assert [row[0] for row in _rows(isolated)] == ["before", *(f"frozen-{i}" for i in range(3))]
        finally:
            sink.close()

    def test_a_statement_held_longer_than_the_write_timeout_is_cancelled_by_postgres(self, isolated: Isolated) -> None:
        url = isolated.settings.database_url.get_secret_value()
        sink = AuditSink(url, write_timeout_s=1.0)
        try:
            batch = [_event(json.dumps(_decision(f"held-{i}")).encode(), 10 + i) for i in range(3)]
            # An uncommitted claim on one id holds the write on its row lock; the claim ends (the connection
            # closes) before the pool waits for the write, whatever happened.
            with ThreadPoolExecutor(1) as pool, psycopg.connect(url) as blocker:
                blocker.execute("INSERT INTO decision_audit_ids (decision_id, decided_at) VALUES (%s, now())",
                                [decision_id_for("held-2", "m", "1")])
                write = pool.submit(sink.write, batch)
                try:
                    with pytest.raises(AuditUnavailable, match="QueryCanceled"):
                        write.result(timeout=20)
                finally:
                    blocker.rollback()
            assert sink.write(batch).inserted == 3
        finally:
            sink.close()
