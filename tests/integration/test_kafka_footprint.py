"""A worker's whole footprint on the cluster is its three topics and its two consumer groups.

Faust runs the app (CLI, web server, lifecycle, signals) but starts no Kafka client of its own: no
leader-election topic (`<app_id>-__assignor-__leader`, replication factor 1), and no third group
(`<app_id>`) that rebalances on every scale event and needs its own ACLs. Without topic creation the
worker creates none at all: tests/integration/test_topics.py.
"""

from __future__ import annotations

import pytest

from streamer.local.produce import publish
from streamer.local.synthetic import ApplicationFactory
from streamer.local.tally import TopicReader
from tests.conftest import KAFKA_ONLY, Isolated
from tests.integration.helpers import cluster_topics, consumer_groups

# Kafka alone: Tansu lists a group only once it has committed offsets, and Faust's group commits none,
# so there the test could not see the group it is about.
pytestmark = [pytest.mark.integration, KAFKA_ONLY]


def test_a_scoring_worker_creates_its_three_topics_and_joins_its_two_groups_and_nothing_else(
    isolated: Isolated,
) -> None:
    s = isolated.settings
    topics_before, groups_before = cluster_topics(s), consumer_groups(s)
    isolated.start_worker()  # topic creation on, as in the embedded stack; ready: both loops assigned
    publish(s, ApplicationFactory(seed=12).mixed(20, 0))
    reader = TopicReader(s, s.decision_topic)
    try:
        assert reader.read_until(lambda records: len(records) >= 20, 60), "the worker is not scoring"
    finally:
        reader.close()

    assert cluster_topics(s) - topics_before == {s.input_topic, s.decision_topic, s.dlq_topic}
    assert consumer_groups(s) - groups_before == {s.scorer_group(), s.audit_group()}
