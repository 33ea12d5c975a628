"""librdkafka configuration built from Settings, for consumers, producers and the admin client."""

from __future__ import annotations

import socket
import uuid
from typing import Any, Literal

from streamer.config import Settings


def common_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.security_protocol,
        "client.id": settings.app_id,
    }
    if settings.broker_profile == "tansu":
        # librdkafka's default is 5 minutes; a Tansu that restarted empty (its log is in memory) and the topics
        # re-created on it are noticed within this interval instead.
        config["topic.metadata.refresh.interval.ms"] = 10_000
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_username:
        config["sasl.username"] = settings.sasl_username
    if settings.sasl_password:
        config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_ca_location:
        config["ssl.ca.location"] = str(settings.ssl_ca_location)
    return config


def consumer_config(
    settings: Settings, group_id: str, fetch_max_wait_ms: int | None = None,
    offset_reset: Literal["earliest", "error"] = "earliest",
) -> dict[str, Any]:
    """Manual commits only: offsets are committed by the batch loop after the batch's work is durable.

    `offset_reset` "error" for a consumer that must never skip: librdkafka then stops a partition whose committed
    offset is out of range, or that has none, with the consumer error _AUTO_OFFSET_RESET (the BatchLoop's
    `on_out_of_range` handles both).
    """
    return {
        **common_config(settings),
        "group.id": group_id,
        **_rebalancing(settings),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": offset_reset,
        "isolation.level": "read_committed",
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "fetch.wait.max.ms": fetch_max_wait_ms or settings.fetch_max_wait_ms,
        # librdkafka fetches ahead up to 64 MB per consumer by default; with two consumers that alone took
        # a worker under 3x overload past its 300 MB budget. 16 MB is ~35,000 applications, over a second
        # of work at full speed.
        "queued.max.messages.kbytes": settings.consumer_queue_max_kbytes,
    }


def _rebalancing(settings: Settings) -> dict[str, Any]:
    """The group protocol and its settings; the batch loop reads them to know whether revokes are incremental."""
    config: dict[str, Any] = {}
    if settings.rebalancing == "consumer":
        # KIP-848: the broker assigns and times the session; librdkafka refuses the classic protocol's settings.
        config["group.protocol"] = "consumer"
    else:
        config["session.timeout.ms"] = settings.session_timeout_ms
        config["heartbeat.interval.ms"] = settings.heartbeat_interval_ms
        if settings.rebalancing == "cooperative":
            config["partition.assignment.strategy"] = "cooperative-sticky"
    if settings.group_instance_id:
        config["group.instance.id"] = settings.group_instance_id
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent, acks=all: a delivery report means the record is durable on the in-sync replicas."""
    return {
        **common_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        # Kafka's Java producer and Kafka Streams hash keys with murmur2; librdkafka's default (CRC32) would
        # put a decision on another partition number than its application, and break key-partitioned joins.
        # Keyless records (none of ours) are spread at random.
        "partitioner": "murmur2_random",
        "linger.ms": settings.linger_ms,
        # A bound on a silent wait: a broker that restarted empty (Tansu) answers every produce of the old
        # producer id with UNKNOWN_PRODUCER_ID, which librdkafka retries until this timeout, whereupon the
        # publisher replaces the producer. librdkafka's default is 5 minutes.
        "message.timeout.ms": settings.delivery_timeout_ms,
    }


def transactional_producer_config(settings: Settings) -> dict[str, Any]:
    """The scorer's producer under exactly_once: idempotent and transactional (librdkafka sets acks=all)."""
    return {
        **producer_config(settings),
        "transactional.id": transactional_id(settings),
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        # librdkafka requires message.timeout.ms <= transaction.timeout.ms.
        "message.timeout.ms": min(settings.delivery_timeout_ms, settings.transaction_timeout_ms),
    }


def transactional_id(settings: Settings) -> str:
    """Stable across restarts of one worker, unique among live ones: a restarted worker's init_transactions then
    aborts what its predecessor left open at once, instead of read_committed consumers waiting for the broker to
    time it out. Host name and web port: no two live workers on one host bind the same port, and a pod keeps
    its name across container restarts. An explicit id, or the static member id, wins; with an ephemeral web
    port (0) it is random."""
    if settings.transactional_id:
        return settings.transactional_id
    if settings.group_instance_id:
        return f"{settings.app_id}-scorer-{settings.group_instance_id}"
    if settings.web_port:
        return f"{settings.app_id}-scorer-{socket.gethostname()}-{settings.web_port}"
    return f"{settings.app_id}-scorer-{uuid.uuid4()}"
