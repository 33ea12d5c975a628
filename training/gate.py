"""The export gate: an artifact is written only if every check passes.

- parity: the ONNX graph reproduces scikit-learn on the whole training set: P(default) within 1e-5
  (max absolute difference) and per-feature contributions within 1e-4;
- auc_floor: cross-validated AUC is at least the configured floor;
- schema: the graph's inputs are exactly fields of `schemas.FEATURE_FIELDS` with matching kinds (checked
  with the worker's own `streamer.core.features.check_inputs`), and its outputs are the contract's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime
import pandas as pd
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline

from streamer.core.features import InputSpec, SchemaMismatch, check_inputs
from training.export import Artifact, ExportError, expected_contributions
from training.onnx_graph import CONTRIBUTIONS, PROBABILITY, onnx_inputs
from training.pipeline import kinds_of

PROBABILITY_TOLERANCE: Final = 1e-5
CONTRIBUTION_TOLERANCE: Final = 1e-4
DEFAULT_MIN_AUC: Final = 0.75
_KINDS: Final = {onnx.TensorProto.FLOAT: "numeric", onnx.TensorProto.STRING: "categorical"}


@dataclass(frozen=True)
class Parity:
    """Largest absolute ONNX-vs-scikit-learn differences over the training set."""

    probability: float
    contributions: float


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    checks: tuple[Check, ...]
    parity: Parity | None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(check.name for check in self.checks if not check.passed)

    def lines(self) -> list[str]:
        return [f"{'pass' if c.passed else 'FAIL'}  {c.name:<9} {c.detail}" for c in self.checks]


class GateRefused(ExportError):
    """At least one gate check failed; nothing was written."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        failed = ", ".join(report.failed)
        super().__init__(
            f"export gate refused the artifact ({failed}); nothing was written\n" + "\n".join(report.lines())
        )


def inspect(
    artifact: Artifact | ExportError,
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    cv_auc: float,
    min_auc: float = DEFAULT_MIN_AUC,
) -> GateReport:
    """Run every check; `artifact` is the build's error instead when the converter failed."""
    floor = Check(
        "auc_floor",
        cv_auc >= min_auc,
        f"cross-validated AUC {cv_auc:.4f} {'>=' if cv_auc >= min_auc else '<'} {min_auc:g}",
    )
    if isinstance(artifact, ExportError):
        conversion = Check("parity", False, f"no graph to compare: conversion failed: {artifact}")
        columns = list(pipeline.named_steps["preprocess"].feature_names_in_)
        problems = input_problems([InputSpec(name, kind) for name, kind in kinds_of(frame, columns).items()])
        return GateReport((conversion, floor, _schema_check(problems, "intended inputs (no graph)")), None)
    parity = measure_parity(artifact, pipeline, frame)
    checks = (
        Check("parity", _parity_ok(parity), _parity_detail(parity)),
        floor,
        _schema_check(schema_problems(artifact.onnx_bytes), f"{len(artifact.features)} inputs"),
    )
    return GateReport(checks, parity)


def require(report: GateReport) -> GateReport:
    """`report` if it passed; else raise `GateRefused` naming the failed checks."""
    if not report.passed:
        raise GateRefused(report)
    return report


def measure_parity(artifact: Artifact, pipeline: Pipeline, frame: pd.DataFrame) -> Parity:
    """Score every row of `frame` with the graph and with scikit-learn; return the largest differences."""
    session = onnxruntime.InferenceSession(artifact.onnx_bytes, providers=["CPUExecutionProvider"])
    feed = onnx_inputs(frame, artifact.features, artifact.kinds or None)
    probability, contributions = session.run([PROBABILITY, CONTRIBUTIONS], feed)
    if artifact.terms is None:
        raise ExportError(f"{artifact.key} was not built by training.export.build: it has no contribution terms")
    rows = frame[list(artifact.features)]
    expected = pipeline.predict_proba(rows)[:, 1]
    reasons = _max_diff(contributions, expected_contributions(pipeline, frame, artifact.features, artifact.terms))
    return Parity(probability=_max_diff(probability, expected), contributions=reasons)


def schema_problems(onnx_bytes: bytes) -> list[str]:
    """Every way the graph's inputs, outputs or feature_names metadata break the worker's contract."""
    model = onnx.load_from_string(onnx_bytes)
    names = [i.name for i in model.graph.input]
    kinds = {i.name: _KINDS.get(i.type.tensor_type.elem_type) for i in model.graph.input}
    problems = [f"input {name!r} is neither a float nor a string tensor" for name, kind in kinds.items() if not kind]
    problems += input_problems([InputSpec(name, kind) for name, kind in kinds.items() if kind])
    outputs = {o.name: _shape(o) for o in model.graph.output}
    if outputs.get(PROBABILITY) != [None] or outputs.get(CONTRIBUTIONS) != [None, len(names)]:
        problems.append(f"outputs are {outputs}, not {PROBABILITY} [N] and {CONTRIBUTIONS} [N, {len(names)}]")
    declared_names = {p.key: p.value for p in model.metadata_props}.get("feature_names", "[]")
    if json.loads(declared_names) != names:
        problems.append("metadata feature_names differ from the graph's inputs")
    return problems


def input_problems(specs: Sequence[InputSpec]) -> list[str]:
    """What the worker's own check (`streamer.core.features.check_inputs`) says about each input."""
    problems = []
    for spec in specs:
        try:
            check_inputs([spec])
        except SchemaMismatch as mismatch:
            problems.append(str(mismatch))
    return problems


def _schema_check(problems: list[str], subject: str) -> Check:
    return Check("schema", not problems, "; ".join(problems) or f"{subject} match schemas")


def _parity_ok(parity: Parity) -> bool:
    return parity.probability <= PROBABILITY_TOLERANCE and parity.contributions <= CONTRIBUTION_TOLERANCE


def _parity_detail(parity: Parity) -> str:
    return (
        f"max |P(onnx) - P(sklearn)| {parity.probability:.3g} (allowed {PROBABILITY_TOLERANCE:g}), "
        f"max |contribution diff| {parity.contributions:.3g} (allowed {CONTRIBUTION_TOLERANCE:g})"
    )


def _shape(value: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _max_diff(actual: NDArray[Any], expected: NDArray[Any]) -> float:
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)))
