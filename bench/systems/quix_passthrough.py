"""Quix Streams' floor: consume each application and produce the same bytes to the decision topic.

No validation, scoring or database: what a bare `quixstreams.Application` costs per record, with its
defaults (at-least-once, a checkpoint every 5 s). Its own venv, like bench/systems/quix_streams.py.
Run: .venv/quix/bin/python -m bench.systems.quix_passthrough
"""

from __future__ import annotations

import os
import time
from typing import Any

from quixstreams import Application


def now_ms(*_: Any) -> int:
    """Quix stamps an output record with its input's timestamp; the bench times outputs by theirs."""
    return time.time_ns() // 1_000_000


def main() -> None:
    env = os.environ
    app = Application(broker_address=env["STREAMER_KAFKA_BOOTSTRAP"], consumer_group=f"{env['STREAMER_APP_ID']}-scorer",
                      auto_offset_reset="earliest", state_dir=env["STREAMER_DATA_DIR"])
    applications = app.topic(env["STREAMER_INPUT_TOPIC"], key_deserializer="bytes", value_deserializer="bytes")
    outputs = app.topic(env["STREAMER_DECISION_TOPIC"], key_serializer="bytes", value_serializer="bytes")
    app.dataframe(applications).set_timestamp(now_ms).to_topic(outputs)
    app.run()


if __name__ == "__main__":
    main()
