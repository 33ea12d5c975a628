"""One ONNX graph for a non-linear pipeline (gbm) whose reason codes are occlusion contributions.

A tree ensemble has no per-feature terms to read off, so the graph measures them. For K input features
it scores K + 1 versions of every row in one batch: the row itself, and the row with feature k set to the
reference applicant's value, for each k. Then

    contributions[:, k]    = logit(x) - logit(x with feature k := reference_k)     [N, K]
    probability_of_default = sigmoid(logit(x))                                     [N]

so a positive contribution is exactly how much that feature's actual value raises the log-odds of default
above what the reference value would give, everything else about the applicant unchanged. Inference cost:
K + 1 tree-ensemble rows per input row (18 for the 17 default features).

The reference applicant is the training median of each numeric feature and the most frequent category of
each categorical one. The substitution happens on the encoded tensor z (each feature's columns of z are
swapped for the reference's), which equals encoding the substituted row because every encoder works
column by column. Unlike the logistic graph, contributions do not add up to the logit: interactions
between features are not split among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import onnx
import pandas as pd
from numpy.typing import NDArray
from onnx import helper, numpy_helper
from onnx.compose import add_prefix
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from training.onnx_graph import (
    CONTRIBUTIONS,
    ML_OPSET,
    OPSET,
    PROBABILITY,
    constant,
    convert_preprocess,
    feature_groups,
    finish,
)
from training.pipeline import Kind, kinds_of

METHOD: Final = "occlusion-at-reference"
_TREES: Final = "trees_"  # prefix for the converted classifier's node, edge and initializer names


@dataclass(frozen=True)
class OcclusionTerms:
    """The reference applicant, raw and encoded, and which encoded columns belong to which feature."""

    reference: dict[str, float | str]  # feature -> reference value, as the data has it
    encoded: NDArray[np.float64]  # [T], the reference applicant through the fitted preprocessing
    groups: NDArray[np.float64]  # [T, K], 1 where encoded column t encodes feature k

    @property
    def rows_per_input_row(self) -> int:
        return int(self.groups.shape[1]) + 1


def occlusion_terms(
    pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, Kind] | None = None
) -> OcclusionTerms:
    """The reference applicant of `frame` (the training data): numeric medians, most frequent categories."""
    kind = dict(kinds) if kinds is not None else kinds_of(frame, features)
    reference: dict[str, float | str] = {
        name: float(frame[name].median()) if kind[name] == "numeric" else str(frame[name].mode().iloc[0])
        for name in features
    }
    preprocess = pipeline.named_steps["preprocess"]
    row = pd.DataFrame({name: [value] for name, value in reference.items()}).astype(frame[list(features)].dtypes)
    encoded = np.asarray(preprocess.transform(row), dtype=np.float64)[0]
    return OcclusionTerms(reference, encoded, feature_groups(preprocess, features))


def expected_contributions(
    pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], terms: OcclusionTerms
) -> NDArray[np.float64]:
    """The same contributions computed by scikit-learn on substituted frames: what the graph must match."""
    rows = frame[list(features)]
    logit = decision_logit(pipeline, rows)
    columns = []
    for name in features:
        substituted = rows.copy()
        substituted[name] = pd.Series([terms.reference[name]] * len(rows), index=rows.index, dtype=rows[name].dtype)
        columns.append(logit - decision_logit(pipeline, substituted))
    return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))


def decision_logit(pipeline: Pipeline, rows: pd.DataFrame) -> NDArray[np.float64]:
    """scikit-learn's log-odds of default for `rows`."""
    return np.asarray(pipeline.decision_function(rows), dtype=np.float64)


def to_onnx(
    pipeline: Pipeline,
    features: Sequence[str],
    terms: OcclusionTerms,
    graph_name: str,
    kinds: Mapping[str, Kind] | None = None,
) -> onnx.ModelProto:
    """The whole pipeline as one graph whose inputs are `features`, in that order."""
    model = convert_preprocess(pipeline.named_steps["preprocess"], features, graph_name, kinds)
    graph = model.graph
    encoded = graph.output[0].name
    trees, scores = _raw_score_graph(pipeline, width=len(terms.encoded))
    k = len(features)
    masks = terms.groups.T[:, np.newaxis, :]  # [K, 1, T]
    graph.initializer.extend(
        [
            constant("occlusion_keep", 1.0 - masks),
            constant("occlusion_fill", masks * terms.encoded),
            _ints("occlusion_first_axis", [0]),
            _ints("occlusion_rows_shape", [-1, len(terms.encoded)]),
            _ints("occlusion_grid_shape", [k + 1, -1]),
            _ints("occlusion_default_class", 1),
            _ints("occlusion_original", 0),
            _ints("occlusion_from", [1]),
            _ints("occlusion_to", [k + 1]),
            *trees.initializer,
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Unsqueeze", [encoded, "occlusion_first_axis"], ["original"], name="original"),
            helper.make_node("Mul", ["original", "occlusion_keep"], ["kept"], name="keep_others"),
            helper.make_node("Add", ["kept", "occlusion_fill"], ["substituted"], name="substitute_reference"),
            helper.make_node("Concat", ["original", "substituted"], ["stacked"], name="stack", axis=0),
            helper.make_node("Reshape", ["stacked", "occlusion_rows_shape"], [f"{_TREES}input"], name="tile"),
            *trees.node,
            helper.make_node("Gather", [scores, "occlusion_default_class"], ["tiled_logit"], name="default", axis=1),
            helper.make_node("Reshape", ["tiled_logit", "occlusion_grid_shape"], ["grid"], name="untile"),
            helper.make_node("Gather", ["grid", "occlusion_original"], ["logit"], name="logit", axis=0),
            helper.make_node(
                "Slice",
                ["grid", "occlusion_from", "occlusion_to", "occlusion_first_axis"],
                ["occluded"],
                name="occluded",
            ),
            helper.make_node("Sub", ["logit", "occluded"], ["lift"], name="lift"),
            helper.make_node("Transpose", ["lift"], [CONTRIBUTIONS], name="per_row", perm=[1, 0]),
            helper.make_node("Sigmoid", ["logit"], [PROBABILITY], name="probability"),
        ]
    )
    return finish(model, k)


def _raw_score_graph(pipeline: Pipeline, width: int) -> tuple[onnx.GraphProto, str]:
    """skl2onnx's graph of the classifier on [M, T] rows, emitting raw scores (log-odds), names prefixed."""
    classifier = pipeline.named_steps["classifier"]
    converted = convert_sklearn(
        classifier,
        name="trees",
        initial_types=[("input", FloatTensorType([None, width]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options={id(classifier): {"zipmap": False, "raw_scores": True}},
    )
    prefixed = add_prefix(converted, _TREES)
    scores = next(o.name for o in prefixed.graph.output if o.name != f"{_TREES}label")
    return prefixed.graph, scores


def _ints(name: str, values: int | list[int]) -> onnx.TensorProto:
    """An int64 constant: a scalar for an int (Gather then drops the axis), a vector for a list."""
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)
