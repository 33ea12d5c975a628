"""Probe: how fast a bare Faust agent consumes from the embedded broker (no work per event).

Publishes 200,000 records of 400 bytes, then runs `faust worker` with one agent iterating
`stream.take(500, within=0.05)` and reports events/s once it has seen them all. The argument picks
Faust's transport: `kafka` (aiokafka, the default) or `confluent` (Faust's confluent-kafka driver). A
worker that has not seen every record within TIMEOUT_S is stopped, and its last log lines are printed.

    python -m bench.probes.faust_take_consume [kafka|confluent]
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from streamer.config import Settings
from streamer.local.embedded import EmbeddedKafka
from streamer.local.processes import free_port
from streamer.runtime.topics import ensure_topics

COUNT = 200_000
TIMEOUT_S = 180.0
APP = '''
import time, faust
app = faust.App("take-probe", broker="{driver}://{bootstrap}", web_port={port}, broker_session_timeout=6.0)
topic = app.topic("probe", value_type=bytes, value_serializer="raw")
seen = {{"n": 0, "t0": None}}

@app.agent(topic)
async def consume(stream):
    async for batch in stream.take(500, within=0.05):
        if seen["t0"] is None:
            seen["t0"] = time.monotonic()
        seen["n"] += len(batch)
        if seen["n"] >= {count}:
            print(f"RESULT {{seen['n'] / (time.monotonic() - seen['t0']):.0f}} events/s", flush=True)
'''


def main(driver: str) -> None:
    kafka = EmbeddedKafka().start()
    try:
        ensure_topics(Settings(kafka_bootstrap=kafka.bootstrap, topic_partitions=8), ["probe"])
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
        for i in range(COUNT):
            while True:
                try:
                    producer.produce("probe", key=str(i).encode(), value=b"x" * 400)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush()
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "take_probe.py").write_text(APP.format(
                driver=driver, bootstrap=kafka.bootstrap, port=free_port(), count=COUNT))
            started = time.monotonic()
            worker = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", "take_probe", "worker", "-l", "warn"],
                cwd=tmp, env={**os.environ, "PYTHONPATH": tmp}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True,
            )
            assert worker.stdout is not None
            lines: queue.Queue[str] = queue.Queue()

            def pump() -> None:
                for x in worker.stdout or []:
                    lines.put(x)

            threading.Thread(target=pump, daemon=True).start()
            tail: list[str] = []
            while True:  # Faust logs print() output; stop at the result, or give up at TIMEOUT_S
                remaining = started + TIMEOUT_S - time.monotonic()
                try:
                    line = lines.get(timeout=max(0.1, remaining))
                except queue.Empty:
                    print(f"{driver}: no result within {TIMEOUT_S:.0f} s; the worker's last lines:")
                    print("".join(tail[-15:]))
                    break
                tail.append(line)
                if "RESULT" in line:
                    print(f"{driver}:", line.strip().split("RESULT", 1)[1].strip(),
                          f"(wall {time.monotonic() - started:.0f} s, including start-up and the group join)")
                    break
            worker.terminate()
            worker.wait(30)
    finally:
        kafka.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "kafka")
