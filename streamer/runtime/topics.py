"""Create the worker's topics when they are missing."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamer.config import Settings
from streamer.logging import get_logger
from streamer.runtime.clients import common_config

log = get_logger(__name__)


def missing_topics(settings: Settings, names: Iterable[str], timeout_s: float = 30.0) -> list[str]:
    """The names of topics the cluster does not have (the metadata request creates none)."""
    return _missing(AdminClient(common_config(settings)), names, timeout_s)


def _missing(admin: AdminClient, names: Iterable[str], timeout_s: float) -> list[str]:
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    return [n for n in dict.fromkeys(names) if n not in existing]


def ensure_topics(settings: Settings, names: Iterable[str], timeout_s: float = 30.0) -> list[str]:
    """Create each missing topic; returns the names created. Existing topics are left as they are."""
    admin = AdminClient(common_config(settings))
    wanted = _missing(admin, names, timeout_s)
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication)
         for n in wanted],
        operation_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker won the race
                raise
    log.info("topics_created", topics=created, partitions=settings.topic_partitions)
    return created
