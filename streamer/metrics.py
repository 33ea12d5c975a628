"""Prometheus metrics (base units, low-cardinality labels only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

APPLICATIONS_CONSUMED = Counter("streamer_applications_consumed_total", "Application records consumed.")
DECISIONS = Counter("streamer_decisions_total", "Decisions published, by outcome.", ["outcome"])
DEAD_LETTERS = Counter("streamer_dead_letters_total", "Records sent to the dead-letter topic.", ["reason"])
DEAD_LETTERS_REDUCED = Counter(
    "streamer_dead_letters_reduced_total",
    "Dead letters the broker refused as too large, published again cut to their dlq.* headers and 1 KiB. Alerted on.",
)
BATCH_SIZE = Histogram(
    "streamer_batch_size", "Records per scoring micro-batch.", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500)
)
INFERENCE_SECONDS = Histogram(
    "streamer_inference_seconds", "ONNX inference time per batch.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
END_TO_END_SECONDS = Histogram(
    "streamer_end_to_end_latency_seconds", "Application timestamp to decision.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AUDIT_ROWS = Counter("streamer_audit_rows_written_total", "Audit rows inserted (duplicates excluded).")
AUDIT_RECORDS_UNREADABLE = Counter(
    "streamer_audit_records_unreadable_total",
    "Decision records (streamer-record headers) that failed to open: tampered, or sealed under a key not in "
    "STREAMER_RECORD_KEYS. Their decisions are audited without a record. Alerted on.",
)
AUDIT_WRITE_SECONDS = Histogram("streamer_audit_write_seconds", "Time to write one audit batch.")
BATCH_FAILURES = Counter("streamer_batch_failures_total", "Batches that failed and will be retried.", ["loop"])
TRANSACTION_COMMIT_SECONDS = Histogram(
    "streamer_transaction_commit_seconds",
    "exactly_once: time to commit one scoring transaction (offsets sent, commit acknowledged).",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
TRANSACTIONS_ABORTED = Counter(
    "streamer_transactions_aborted_total",
    "exactly_once: scoring transactions aborted, by what followed: redone (the same records again) or dropped "
    "(fenced by the group, or stopping: re-read from the committed offsets).",
    ["then"],
)
MODEL_INFO = Gauge("streamer_model_info", "The model serving decisions.", ["name", "version", "sha256"])
LAST_PROCESSED = Gauge("streamer_last_processed_timestamp_seconds", "When the scorer last finished a batch.")
MODEL_LOAD_FAILURES = Counter(
    "streamer_model_load_failures_total", "Candidate models refused; the previous model kept serving.", ["reason"]
)
MODEL_SWAPS = Counter("streamer_model_swaps_total", "Models swapped in without a restart.")
MODEL_REGISTRY_UP = Gauge(
    "streamer_model_registry_up",
    "1 when the model registry answered the last poll, 0 while it does not; the serving model stays either way.",
)
AUDIT_LAG_EVENTS = Gauge(
    "streamer_audit_lag_events", "Decision events on the decision topic not yet committed to Postgres."
)
RECORDS_GIVEN_UP = Counter(
    "streamer_records_given_up_total",
    "Records that still failed alone after their batch failed STREAMER_MAX_BATCH_ATTEMPTS times while the "
    "database answered: dead-lettered (retries_exhausted) instead of retried forever.",
    ["loop"],
)
AUDIT_DATABASE_UP = Gauge(
    "streamer_audit_database_up",
    "1 if the audit database answered the worker's last probe (every 2 s), else 0. Alerted on; not a readiness gate.",
)
AUDIT_DEFAULT_PARTITION_ROWS = Gauge(
    "streamer_audit_default_partition_rows",
    "Rows in decision_audit_default, which no monthly partition covers (counted up to 10,000, every 60 s). "
    "Alerted on: the partitions are behind.",
)
AUDIT_OFFSET_OUT_OF_RANGE = Counter(
    "streamer_audit_offset_out_of_range_total",
    "Times the audit found its committed offset out of the decision topic's log (decisions expired unaudited); "
    "the partition stays stopped there.",
    ["topic", "partition"],
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every value, in one numpy pass instead of a Python loop per value.

    The scorer observes one latency per decision, thousands a second. This writes prometheus_client's
    own bucket and sum values (a private layout; the version is pinned, and tests/unit/test_metrics.py
    checks the result equals observe()).
    """
    if not values:
        return
    # observe() counts a value in the first bucket whose upper bound is >= the value.
    counts = np.bincount(np.searchsorted(histogram._upper_bounds, values, side="left"),
                         minlength=len(histogram._upper_bounds))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(np.sum(values)))


def unregister_scoring_gauges() -> None:
    """For a worker that does not score (STREAMER_STAGES=audit): its model gauges would read 0, and
    `min(streamer_model_registry_up) == 0` would alert on a registry it never asks."""
    for gauge in (MODEL_INFO, MODEL_REGISTRY_UP, LAST_PROCESSED):
        REGISTRY.unregister(gauge)
