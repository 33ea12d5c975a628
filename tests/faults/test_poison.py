"""5. Poison input: payloads drawn from the JSON Schema and mutated, plus hand-picked nasties, mixed with
valid applications. Each payload ends as exactly one decision or one dead letter (a clean run has no
redelivery, so no duplicates either), the worker never stops, and its memory stays flat.

Flat: after a warm-up (2,000 valid applications, the first 500 generated payloads and the hand-picked
ones, so every code path has been used once and the 10 MB record has grown librdkafka's and Python's
buffers once), the rest is published in two halves, each as fast as the producer goes. The first
half brings the buffers to their full-speed size (librdkafka prefetches up to 64 MB per consumer, four
batches of 1,000 records are in flight); the second half, the same kind of work again, must add less
than 50 MB: memory does not grow with the number of payloads. RSS never exceeds 300 MB, the per-worker
budget, from the start, the 10 MB record included. (Probe: 8 rounds of 20,000 payloads, half of them
generated, left RSS at 168, 191, 191, 176, 191, 192, 192, 193 MB.)
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid

import pytest

from tests.conftest import Isolated
from tests.faults.conftest import Sizes
from tests.faults.harness import (
    Payload,
    check_promise,
    log_events,
    publish_all,
    report,
    rss_mb,
    settle,
    spawn,
    synthetic,
)
from tests.faults.poison import hand_picked, mutated, schema_documents

pytestmark = [pytest.mark.faults, pytest.mark.integration]

FLAT_MB, PEAK_MB = 50.0, 300.0


def test_poison_payloads_each_end_in_one_place_and_the_worker_stays_up_and_flat(
    isolated: Isolated, size: Sizes
) -> None:
    s, tag = isolated.settings, uuid.uuid4().hex[:6]
    worker = spawn(isolated.env, isolated.run_dir / "worker.log", isolated.stack.workers, wait=False)
    picked = hand_picked(tag)
    wrong = [(p.label, p.expected_reason, want) for p, want in picked if p.expected_reason != want]
    assert not wrong, f"validation disagrees with the README on: {wrong}"
    generated = mutated(schema_documents(size.poison_seeds), size.poison_generated, tag)
    valid = synthetic(2_000 + size.poison_generated // 2, 0, seed=105)
    warm_up = valid[:1000] + generated[:500] + [p for p, _ in picked] + valid[1000:2000]
    mixed: list[Payload] = generated[500:] + valid[2000:]
    random.Random(5).shuffle(mixed)
    worker.wait_ready()
    assert worker.process is not None
    pid = worker.process.pid
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    first = publish_all(s, warm_up)
    settle(s, first.ends())
    baseline = rss_mb(pid)
    half = len(mixed) // 2
    second = publish_all(s, mixed[:half])
    settle(s, first.ends() | second.ends(), timeout_s=600)
    after_first_half = rss_mb(pid)
    third = publish_all(s, mixed[half:])
    ledger = settle(s, first.ends() | second.ends() | third.ends(), timeout_s=600)
    done.set()
    sampler.join()
    final = rss_mb(pid)
    account = check_promise(ledger, warm_up + mixed, first.positions + second.positions + third.positions,
                            s.database_url.get_secret_value())

    giant = [h for copies in ledger.dead_letters_by_source().values() for h in copies if h.get("dlq.truncated")]
    huge = next(p for p, _ in picked if p.label == "10 MB value").value or b""
    assert [(h["dlq.original_bytes"], h["dlq.original_sha256"]) for h in giant] == [
        (str(len(huge)).encode(), hashlib.sha256(huge).hexdigest().encode())
    ], "the 10 MB record is dead-lettered once, cut, with its size and digest"
    assert account.duplicate_decision_events == 0 and account.duplicate_dead_letters == 0
    assert worker.process.poll() is None and worker.process.pid == pid, "the worker died of bad input"
    events = log_events(isolated.run_dir / "worker.log")
    assert events["batch_failed"] == 0, "a batch failed on bad input (and was retried)"
    assert final - after_first_half < FLAT_MB, (
        f"RSS grew from {after_first_half:.0f} MB after the first half to {final:.0f} MB after the second"
    )
    assert max(samples, default=final) < PEAK_MB, f"RSS peaked at {max(samples):.0f} MB"
    report(size.name, "poison", {
        **account.as_dict(), "payloads": len(warm_up) + len(mixed), "generated": len(generated),
        "hand_picked": len(picked),
        "rss_mb": {"warm": round(baseline, 1), "after_first_half": round(after_first_half, 1),
                   "peak": round(max(samples, default=0), 1), "end": round(final, 1)},
    })
