"""Probe: CPU per application of each pure stage of the scoring stage, on one idle core, no Kafka.

Validation (the fast path and pydantic alone), feature columns, the ONNX call, reason codes and the
decision encoder, over a batch of N synthetic applications; best of 20 runs, in µs per application.

    python -m bench.probes.scoring_stages 1000
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from schemas.application import LoanApplication
from streamer.core.decisions import DecisionEncoder
from streamer.core.features import input_arrays
from streamer.core.policy import DecisionPolicy, reason_indices
from streamer.core.validation import Rejection, parse_application
from streamer.local.synthetic import ApplicationFactory
from streamer.model.onnx_scorer import OnnxScorer
from streamer.model.registry import champion


def _best_us(count: int, work: Callable[[], object], repeats: int = 20) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / count


def main(count: int) -> None:
    payloads = [p.value for p in ApplicationFactory(seed=3).mixed(count, 0) if p.value is not None]
    entry = champion(Path("onnx_models"))
    scorer = OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)
    encoder = DecisionEncoder(scorer.ref, scorer.feature_names, DecisionPolicy())
    applications = [a for a in (parse_application(p, 65_536) for p in payloads) if not isinstance(a, Rejection)]
    feeds = input_arrays(applications, scorer.inputs)
    scores = scorer.score(applications)
    now = datetime.now(UTC)
    stages: dict[str, Callable[[], object]] = {
        "validate (as shipped: msgspec mirror, pydantic for the rest)":
            lambda: [parse_application(p, 65_536) for p in payloads],
        "validate with pydantic alone": lambda: [LoanApplication.model_validate_json(p) for p in payloads],
        "feature columns": lambda: input_arrays(applications, scorer.inputs),
        "ONNX call": lambda: scorer._session.run(None, feeds),
        "reason codes, every row": lambda: reason_indices(scores.contributions),
        "encode decisions (policy, reasons, ids, JSON)": lambda: encoder.encode(
            applications, [0.0] * len(applications), scores, now),
    }
    for name, work in stages.items():
        print(f"{name:62s} {_best_us(len(payloads), work):6.2f} µs per application")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
