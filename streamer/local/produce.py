"""Publish synthetic applications at a steady rate (`streamer produce`, the demo, the tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, Producer

from streamer.config import Settings
from streamer.local.synthetic import SamplePayload
from streamer.runtime.clients import producer_config

# How long a pacing wait may last before `stop` is looked at again.
_PACE_STEP_S = 0.1
# On stop, records already handed to librdkafka get this long to be acknowledged, not the full minute.
_STOP_FLUSH_S = 5.0


def publish(
    settings: Settings, payloads: Iterable[SamplePayload], rate_per_s: float | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Send every payload to the input topic, keyed, until `stop` is set; returns how many the broker acknowledged.

    Raises when a record was not delivered, unless publishing was stopped (then the count says what landed).
    """
    producer = Producer({**producer_config(settings), "linger.ms": 5})
    stopping = stop or threading.Event()
    delivered, failures = 0, []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        nonlocal delivered
        if error is None:
            delivered += 1
        else:
            failures.append(str(error))

    started, sent = time.monotonic(), 0
    for payload in payloads:
        if rate_per_s:
            _pace(producer, started + sent / rate_per_s, stopping)
        if stopping.is_set():
            break
        while True:
            try:
                producer.produce(settings.input_topic, key=payload.key, value=payload.value, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
    unacknowledged = producer.flush(_STOP_FLUSH_S if stopping.is_set() else 60)
    if (failures or unacknowledged) and not stopping.is_set():
        first = failures[0] if failures else "no acknowledgement within 60 s"
        raise RuntimeError(f"{len(failures) + unacknowledged} of {sent} applications were not delivered: {first}")
    return delivered


def _pace(producer: Producer, due: float, stop: threading.Event) -> None:
    """Serve delivery reports until `due` (monotonic), looking at `stop` at least every 100 ms."""
    while not stop.is_set():
        wait = due - time.monotonic()
        if wait <= 0:
            return
        producer.poll(min(wait, _PACE_STEP_S))
