"""Export a fitted pipeline as an artifact per onnx_models/README.md, behind a parity gate.

Nothing is written unless the ONNX graph reproduces scikit-learn on the whole training set. The bytes
are deterministic: the same data, seed and `trained_at` give a byte-identical .onnx file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnxruntime
import pandas as pd
from numpy.typing import NDArray
from onnx import helper
from sklearn.pipeline import Pipeline

from schemas import FEATURES_BY_NAME
from streamer.policy import DecisionPolicy
from training import registry
from training.onnx_graph import CONTRIBUTIONS, PROBABILITY, LinearTerms, linear_terms, onnx_inputs, to_onnx

PROBABILITY_TOLERANCE: Final = 1e-5
LOGIT_TOLERANCE: Final = 1e-4
_VERSION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")  # it becomes part of file names
TARGET_DEFINITION: Final = (
    "default = 1 where the training data's `default` column is 1 (German credit data: creditability == "
    "'bad'), else 0; probability_of_default = P(default = 1 | inputs)"
)


class ExportError(RuntimeError):
    """The artifact failed the parity gate or would overwrite a released version."""


@dataclass(frozen=True)
class Parity:
    """Largest absolute ONNX-vs-scikit-learn differences over the training set."""

    probability: float
    logit: float
    contributions: float


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    features: tuple[str, ...]
    onnx_bytes: bytes
    metrics: dict[str, float]
    training_data_sha256: str
    trained_at: str
    seed: int
    parity: Parity

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def file(self) -> str:
        return f"{self.key}.onnx"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()


def build_date(environ: Mapping[str, str]) -> str:
    """`trained_at` as YYYY-MM-DD (UTC): from SOURCE_DATE_EPOCH when set, else today."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "")
    if not epoch:
        return datetime.now(UTC).date().isoformat()
    if not epoch.isdigit():
        raise ExportError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch!r}")
    return datetime.fromtimestamp(int(epoch), UTC).date().isoformat()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    features: Sequence[str],
    *,
    name: str,
    version: str,
    metrics: dict[str, float],
    training_data_sha256: str,
    trained_at: str,
    seed: int,
) -> Artifact:
    """The artifact for a pipeline fitted on `frame`; raises `ExportError` if parity fails."""
    if not _VERSION.fullmatch(version):
        raise ExportError(f"version {version!r} must be 1-32 of [A-Za-z0-9._-], starting alphanumeric")
    terms = linear_terms(pipeline, frame, features)
    model = to_onnx(pipeline, features, terms, graph_name=f"{name}-{version}")
    properties = {
        "name": name,
        "version": version,
        "feature_names": json.dumps(list(features)),
        "target": TARGET_DEFINITION,
        "training_data_sha256": training_data_sha256,
        "trained_at": trained_at,
        "metrics": json.dumps(metrics, sort_keys=True),
        "policy_thresholds": json.dumps(DecisionPolicy().thresholds(), sort_keys=True),
    }
    helper.set_model_props(model, properties)
    onnx_bytes = model.SerializeToString()
    parity = check_parity(onnx_bytes, pipeline, frame, features, terms)
    return Artifact(name, version, tuple(features), onnx_bytes, metrics, training_data_sha256, trained_at, seed, parity)


def check_parity(
    onnx_bytes: bytes, pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], terms: LinearTerms
) -> Parity:
    """Compare the graph with scikit-learn on every row of `frame`; raise `ExportError` beyond tolerance."""
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    probability, contributions = session.run([PROBABILITY, CONTRIBUTIONS], onnx_inputs(frame, features))
    rows = frame[list(features)]
    transformed = np.asarray(pipeline.named_steps["preprocess"].transform(rows), dtype=np.float64)
    parity = Parity(
        probability=_max_diff(probability, pipeline.predict_proba(rows)[:, 1]),
        logit=_max_diff(contributions.sum(axis=1, dtype=np.float64) + terms.base, pipeline.decision_function(rows)),
        contributions=_max_diff(contributions, terms.contributions(transformed)),
    )
    if parity.probability > PROBABILITY_TOLERANCE:
        raise ExportError(
            f"parity gate: ONNX P(default) differs from scikit-learn by up to {parity.probability:.3g} "
            f"(allowed {PROBABILITY_TOLERANCE:g}); nothing was written"
        )
    if max(parity.logit, parity.contributions) > LOGIT_TOLERANCE:
        raise ExportError(
            f"parity gate: contributions miss the logit by up to {parity.logit:.3g} and the reference "
            f"contributions by {parity.contributions:.3g} (allowed {LOGIT_TOLERANCE:g}); nothing was written"
        )
    return parity


def sidecar(artifact: Artifact) -> dict[str, object]:
    """The `<name>-<version>.json` document: what the artifact is, without loading it."""
    return {
        "name": artifact.name,
        "version": artifact.version,
        "file": artifact.file,
        "sha256": artifact.sha256,
        "feature_names": list(artifact.features),
        "inputs": [{"name": n, "kind": FEATURES_BY_NAME[n].kind} for n in artifact.features],
        "metrics": artifact.metrics,
        "training_data_sha256": artifact.training_data_sha256,
        "trained_at": artifact.trained_at,
        "seed": artifact.seed,
    }


def write(artifact: Artifact, out_dir: Path, promote: bool) -> Path:
    """Write the .onnx file, its sidecar and the updated registry; return the .onnx path.

    Refuses, before writing anything, to replace a released version's file with different bytes.
    """
    onnx_path, registry_path = out_dir / artifact.file, out_dir / registry.FILE_NAME
    if onnx_path.exists() and (released := sha256_of(onnx_path)) != artifact.sha256:
        raise ExportError(
            f"{onnx_path} exists with different bytes (sha256 {released}, new {artifact.sha256}). "
            "Released versions are immutable: choose another --version, or delete the file deliberately."
        )
    current = registry.parse(registry_path.read_text()) if registry_path.exists() else registry.empty()
    entry: registry.ModelEntry = {
        "name": artifact.name,
        "version": artifact.version,
        "file": artifact.file,
        "sha256": artifact.sha256,
        "metrics": artifact.metrics,
    }
    updated = registry.register(current, artifact.key, entry, promote)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(onnx_path, artifact.onnx_bytes)
    _write_atomic(out_dir / f"{artifact.key}.json", (json.dumps(sidecar(artifact), indent=2) + "\n").encode())
    _write_atomic(registry_path, registry.dump(updated).encode())
    return onnx_path


def _max_diff(actual: NDArray[Any], expected: NDArray[Any]) -> float:
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))


def _write_atomic(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)
