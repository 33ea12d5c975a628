"""Publish synthetic applications at a steady rate (`streamer produce`, the demo, the tests)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Producer

from streamer.config import Settings
from streamer.local.synthetic import SamplePayload
from streamer.runtime.clients import producer_config


def publish(settings: Settings, payloads: Iterable[SamplePayload], rate_per_s: float | None = None) -> int:
    """Send every payload to the input topic, keyed; returns the number acknowledged by the broker."""
    producer = Producer({**producer_config(settings), "linger.ms": 5})
    failures: list[str] = []

    def on_delivery(error: object, _: object) -> None:
        if error is not None:
            failures.append(str(error))

    started, sent = time.monotonic(), 0
    for payload in payloads:
        if rate_per_s:
            lag = started + sent / rate_per_s - time.monotonic()
            if lag > 0:
                producer.poll(lag)
        while True:
            try:
                producer.produce(settings.input_topic, key=payload.key, value=payload.value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
    producer.flush(60)
    if failures:
        raise RuntimeError(f"{len(failures)} of {sent} applications were not delivered: {failures[0]}")
    return sent
