"""The scorer's batched histogram update must read exactly as one observe() per value would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from streamer.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in histogram.collect() for s in metric.samples if not s.name.endswith("_created")}


def test_observe_many_equals_one_observe_per_value() -> None:
    rng = random.Random(4)
    # Values on bucket bounds, between them, past the last one, and zero.
    values = [*BUCKETS, 0.0, 11.0, 1e6] + [rng.lognormvariate(-3, 2) for _ in range(2_000)]
    one_by_one = Histogram("one_by_one_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry())
    batched = Histogram("one_by_one_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry())
    for value in values:
        one_by_one.observe(value)
    observe_many(batched, values[:700])
    observe_many(batched, values[700:])
    observe_many(batched, [])
    expected, got = _samples(one_by_one), _samples(batched)
    total = ("one_by_one_seconds_sum", ())
    assert abs(got.pop(total) - expected.pop(total)) < 1e-6  # summed in another order
    assert got == expected  # every cumulative bucket and the count
    assert got[("one_by_one_seconds_count", ())] == len(values)
