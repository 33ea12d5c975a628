"""The audit never skips decisions: when decisions expired from the decision topic before they were audited (the
group's committed offset is below the log start), the audit stops that partition with an error and a metric,
commits nothing past the gap, and audits the other partitions on. A fresh audit group starts at the beginning
(`test_end_to_end.py` audits every decision from a fresh group on both brokers)."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamer.audit.consumer_offsets import stored_offsets
from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from streamer.runtime.clients import common_config, producer_config
from tests.conftest import KAFKA_ONLY, Isolated
from tests.integration.helpers import committed, eventually, readiness, scrape, wait_until_consumed

# Records deleted below the high watermark (DeleteRecords), in a log that outlives a worker restart: Kafka's.
pytestmark = [pytest.mark.integration, KAFKA_ONLY]

GAP_PARTITION = 0


def _expire_decisions_past(isolated: Isolated, offset: int) -> int:
    """Land 5 decisions on the gap partition, then delete its log up to 2 before its end, as retention would;
    returns the new log start."""
    s = isolated.settings
    producer = Producer(producer_config(s))
    for n in range(5):  # the audit would find these valid (a decision's bytes); they are never read
        producer.produce(s.decision_topic, key=f"expired-{n}".encode(), value=b"{}", partition=GAP_PARTITION)
    assert producer.flush(10) == 0
    log_start = offset + 3
    admin = AdminClient(common_config(s))
    futures = admin.delete_records([TopicPartition(s.decision_topic, GAP_PARTITION, log_start)])
    for future in futures.values():
        assert future.result(timeout=10).low_watermark == log_start
    return log_start


def _logged(isolated: Isolated, event: str) -> list[dict[str, object]]:
    lines = (isolated.run_dir / "worker.log").read_text(errors="replace").splitlines()
    return [r for r in (json.loads(line) for line in lines if line.startswith("{")) if r.get("event") == event]


def test_decisions_expired_before_their_audit_stop_their_partition_with_an_error_and_are_never_skipped(
    isolated: Isolated,
) -> None:
    s = isolated.settings
    key = (s.decision_topic, GAP_PARTITION)
    worker = isolated.start_worker()
    publish(s, ApplicationFactory(seed=71).mixed(60, invalid_every=0))
    reader = TopicReader(s, s.decision_topic)
    try:
        assert reader.read_until(lambda r: len(r) >= 60, 60)
        wait_until_consumed(s, s.audit_group(), reader.records)
        # The audit resumes from the offsets its transactions stored in Postgres, which follow the committed ones
        # by one idle write (streamer/stages/audit.py); stopped before that, it resumes one record earlier and
        # meets the gap there. Both are right; the test wants one place to expect the gap.
        url = s.database_url.get_secret_value()
        eventually(lambda: stored_offsets(url, s.audit_group(), [key]).get(key)
                   == committed(s, s.audit_group(), [key])[key], 10, "the audit's offsets stored in Postgres")
        assert worker.stop() == 0
        before = committed(s, s.audit_group(), [key])[key]
        assert stored_offsets(url, s.audit_group(), [key])[key] == before
        assert before > 0, "no decision landed on the gap partition"
        log_start = _expire_decisions_past(isolated, before)

        worker = isolated.start_worker()
        seen = len(reader.records)
        publish(s, ApplicationFactory(seed=72).mixed(60, invalid_every=0))
        assert reader.read_until(lambda r: len(r) >= seen + 60 + 2, 60)  # with the 2 left after the gap
        others = [m for m in reader.records[seen:] if m.partition() != GAP_PARTITION]
        wait_until_consumed(s, s.audit_group(), others, timeout_s=30)  # the other partitions go on
    finally:
        reader.close()

    sample = f"streamer_audit_offset_out_of_range_total{{partition={GAP_PARTITION},topic={s.decision_topic}}}"
    eventually(lambda: scrape(worker.web_port).get(sample) == 1, 10, "the gap counted once")
    [event] = _logged(isolated, "offsets_out_of_range")
    assert (event["loop"], event["topic"], event["partition"], event["offset"]) == (
        "audit", s.decision_topic, GAP_PARTITION, before)
    assert event["level"] == "error"
    assert committed(s, s.audit_group(), [key])[key] == before < log_start, "the audit committed past the gap"
    assert worker.process is not None and worker.process.poll() is None, "the worker stopped"
    assert readiness(worker.web_port) == 200
