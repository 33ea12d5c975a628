"""A fitted pipeline as an artifact per onnx_models/README.md: one ONNX graph plus its metadata.

Building does not judge the artifact: `training.gate` does, and `training.store` writes only what the gate
passed. The bytes are deterministic: the same data, seed and `trained_at` give a byte-identical file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import onnx
import pandas as pd
from numpy.typing import NDArray
from onnx import helper
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from schemas import PROTECTED_FEATURES
from streamer.core.policy import DecisionPolicy
from training import onnx_graph, onnx_occlusion
from training.onnx_graph import LinearTerms
from training.onnx_occlusion import OcclusionTerms
from training.pipeline import Kind, family_of, kinds_of

_VERSION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")  # it becomes part of file names
TARGET_DEFINITION: Final = (
    "default = 1 where the training data's `default` column is 1 (German credit data: creditability == "
    "'bad'), else 0; probability_of_default = P(default = 1 | inputs)"
)
LINEAR_METHOD: Final = "linear-exact"
Terms = LinearTerms | OcclusionTerms


class ExportError(RuntimeError):
    """The artifact cannot be built or written (bad version, converter failure, immutable version)."""


class ConversionFailed(ExportError):
    """The ONNX converter could not turn the fitted pipeline into a graph."""


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
    model: str = "logreg"
    kinds: dict[str, Kind] = field(default_factory=dict)
    terms: Terms | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def file(self) -> str:
        return f"{self.key}.onnx"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()

    @property
    def contributions_method(self) -> str:
        return LINEAR_METHOD if isinstance(self.terms, LinearTerms) else onnx_occlusion.METHOD

    @property
    def protected_features(self) -> tuple[str, ...]:
        """Protected attributes this model takes as inputs (none by default)."""
        return tuple(name for name in self.features if name in PROTECTED_FEATURES)


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
    """The artifact for a pipeline fitted on `frame`. Raises `ConversionFailed` if skl2onnx cannot convert it."""
    if not _VERSION.fullmatch(version):
        raise ExportError(f"version {version!r} must be 1-32 of [A-Za-z0-9._-], starting alphanumeric")
    kinds = kinds_of(frame, features)
    try:
        terms, model = _graph(pipeline, frame, features, kinds, graph_name=f"{name}-{version}")
    except Exception as error:  # skl2onnx and onnx raise many unrelated types for an unconvertible model
        raise ConversionFailed(f"{type(error).__name__}: {_first_line(error)}") from error
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
    return Artifact(
        name,
        version,
        tuple(features),
        model.SerializeToString(),
        metrics,
        training_data_sha256,
        trained_at,
        seed,
        model=family_of(pipeline),
        kinds=kinds,
        terms=terms,
    )


def expected_contributions(
    pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], terms: Terms
) -> NDArray[np.float64]:
    """The contributions scikit-learn gives for `frame`: what the graph's `contributions` must reproduce."""
    if isinstance(terms, LinearTerms):
        transformed = pipeline.named_steps["preprocess"].transform(frame[list(features)])
        return terms.contributions(np.asarray(transformed, dtype=np.float64))
    return onnx_occlusion.expected_contributions(pipeline, frame, features, terms)


def sidecar(artifact: Artifact) -> dict[str, object]:
    """The `<name>-<version>.json` document: what the artifact is, without loading it."""
    return {
        "name": artifact.name,
        "version": artifact.version,
        "file": artifact.file,
        "sha256": artifact.sha256,
        "model": artifact.model,
        "feature_names": list(artifact.features),
        "inputs": [{"name": n, "kind": artifact.kinds.get(n, "numeric")} for n in artifact.features],
        "protected_features": list(artifact.protected_features),
        "contributions": _contributions_note(artifact),
        "metrics": artifact.metrics,
        "training_data_sha256": artifact.training_data_sha256,
        "trained_at": artifact.trained_at,
        "seed": artifact.seed,
        "card": f"{artifact.key}.md",
    }


def _graph(
    pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], kinds: dict[str, Kind], graph_name: str
) -> tuple[Terms, onnx.ModelProto]:
    if isinstance(pipeline.named_steps["classifier"], LogisticRegression):
        linear = onnx_graph.linear_terms(pipeline, frame, features)
        return linear, onnx_graph.to_onnx(pipeline, features, linear, graph_name, kinds)
    occlusion = onnx_occlusion.occlusion_terms(pipeline, frame, features, kinds)
    return occlusion, onnx_occlusion.to_onnx(pipeline, features, occlusion, graph_name, kinds)


def _contributions_note(artifact: Artifact) -> dict[str, object]:
    if isinstance(artifact.terms, OcclusionTerms):
        return {
            "method": onnx_occlusion.METHOD,
            "reference": artifact.terms.reference,
            "rows_per_input_row": artifact.terms.rows_per_input_row,
        }
    return {"method": LINEAR_METHOD, "reference": "training mean of each encoded column", "rows_per_input_row": 1}


def _first_line(error: BaseException) -> str:
    """The error's first line, shortened, plus its cause's: converter errors wrap the real reason."""
    text = (str(error).strip() or repr(error)).splitlines()[0][:160]
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause).strip():
        text += f" (caused by {type(cause).__name__}: {str(cause).strip().splitlines()[0][:200]})"
    return text
