"""KIP-848's consumer group protocol (group.protocol=consumer) on Apache Kafka: a worker on it scores and
audits every application once, and its groups are of the new kind on the broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from streamer.runtime.clients import common_config
from tests.conftest import KAFKA_ONLY, Isolated
from tests.faults.harness import check_promise, publish_all, settle, spawn, synthetic

pytestmark = [pytest.mark.integration, KAFKA_ONLY]  # Tansu does not speak the consumer protocol


def test_a_worker_on_the_consumer_group_protocol_decides_and_audits_every_application_once(
    isolated: Isolated,
) -> None:
    s = isolated.settings
    spawn({**isolated.env, "STREAMER_REBALANCING": "consumer"}, isolated.run_dir / "worker.log", isolated.stack.workers)
    payloads = synthetic(400, 50, seed=121)
    published = publish_all(s, payloads)
    account = check_promise(settle(s, published.ends(), timeout_s=60), payloads, published.positions,
                            s.database_url.get_secret_value())
    assert account.audit_rows == account.valid

    admin = AdminClient(common_config(s))
    groups = admin.describe_consumer_groups([s.scorer_group(), s.audit_group()])
    kinds = {name: str(future.result(timeout=10).type) for name, future in groups.items()}
    assert all("CONSUMER" in kind for kind in kinds.values()), kinds
