"""One ONNX graph for a fitted logistic pipeline: raw named inputs -> P(default) and contributions.

skl2onnx converts the ColumnTransformer (scaling and one-hot encoding) into the transformed tensor z.
The logistic regression is then written by hand so the graph can also explain itself:

    contributions = ((z - reference) * coef) @ groups        [N, K], one column per input feature
    logit         = sum(contributions, axis=1) + base       base = intercept + coef . reference
    probability_of_default = sigmoid(logit)                 [N]

`reference` is the training mean of z, so a contribution is relative to the average training applicant.
The helpers here (inputs, preprocessing, outputs) are shared with `training.onnx_occlusion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnx
import pandas as pd
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from schemas import FEATURES_BY_NAME
from training.pipeline import Kind, kinds_of

PROBABILITY: Final = "probability_of_default"
CONTRIBUTIONS: Final = "contributions"
OPSET: Final = 17
ML_OPSET: Final = 1


@dataclass(frozen=True)
class LinearTerms:
    """The fitted logistic regression over the transformed columns, grouped by input feature."""

    coef: NDArray[np.float64]  # [T]
    reference: NDArray[np.float64]  # [T], training mean of each transformed column
    groups: NDArray[np.float64]  # [T, K], 1 where transformed column t encodes feature k
    intercept: float

    @property
    def base(self) -> float:
        """The log-odds of the reference applicant: what the contributions are relative to."""
        return self.intercept + float(self.coef @ self.reference)

    def contributions(self, transformed: NDArray[np.float64]) -> NDArray[np.float64]:
        result: NDArray[np.float64] = ((transformed - self.reference) * self.coef) @ self.groups
        return result


def linear_terms(pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str]) -> LinearTerms:
    """The terms of a fitted pipeline, with the reference taken from `frame` (the training data)."""
    preprocess, classifier = pipeline.named_steps["preprocess"], pipeline.named_steps["classifier"]
    transformed = np.asarray(preprocess.transform(frame[list(features)]), dtype=np.float64)
    return LinearTerms(
        coef=np.asarray(classifier.coef_[0], dtype=np.float64),
        reference=transformed.mean(axis=0),
        groups=feature_groups(preprocess, features),
        intercept=float(classifier.intercept_[0]),
    )


def to_onnx(
    pipeline: Pipeline,
    features: Sequence[str],
    terms: LinearTerms,
    graph_name: str,
    kinds: Mapping[str, Kind] | None = None,
) -> onnx.ModelProto:
    """The whole pipeline as one graph whose inputs are `features`, in that order."""
    model = convert_preprocess(pipeline.named_steps["preprocess"], features, graph_name, kinds)
    graph = model.graph
    transformed = graph.output[0].name
    graph.initializer.extend(
        [
            constant("contribution_reference", terms.reference),
            constant("contribution_coef", terms.coef),
            constant("contribution_groups", terms.groups),
            constant("contribution_base", np.array(terms.base)),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "contribution_axis"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Sub", [transformed, "contribution_reference"], ["centred"], name="centre"),
            helper.make_node("Mul", ["centred", "contribution_coef"], ["weighted"], name="weigh"),
            helper.make_node("MatMul", ["weighted", "contribution_groups"], [CONTRIBUTIONS], name="group"),
            helper.make_node(
                "ReduceSum",
                [CONTRIBUTIONS, "contribution_axis"],
                ["relative_logit"],
                name="total",
                keepdims=0,
            ),
            helper.make_node("Add", ["relative_logit", "contribution_base"], ["logit"], name="add_base"),
            helper.make_node("Sigmoid", ["logit"], [PROBABILITY], name="probability"),
        ]
    )
    return finish(model, len(features))


def convert_preprocess(
    preprocess: ColumnTransformer, features: Sequence[str], graph_name: str, kinds: Mapping[str, Kind] | None
) -> onnx.ModelProto:
    """skl2onnx's graph of the fitted ColumnTransformer: named [N, 1] inputs -> z [N, T] (its only output)."""
    kind = dict(kinds) if kinds is not None else _schema_kinds(features)
    model: onnx.ModelProto = convert_sklearn(
        preprocess,
        name=graph_name,  # skl2onnx would otherwise name the graph with a random uuid
        initial_types=[(name, _input_type(kind[name])) for name in features],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    return model


def finish(model: onnx.ModelProto, n_features: int) -> onnx.ModelProto:
    """Declare the contract's two outputs and the opsets, then run the full ONNX checker."""
    graph = model.graph
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(PROBABILITY, TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, [None, n_features]),
        ]
    )
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_inputs(
    frame: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, Kind] | None = None
) -> dict[str, NDArray[Any]]:
    """The graph's input feed for a flat-feature frame: [N, 1] float32 or string columns."""
    kind = dict(kinds) if kinds is not None else kinds_of(frame, features)
    return {
        name: frame[name].to_numpy(dtype=np.float32 if kind[name] == "numeric" else object).reshape(-1, 1)
        for name in features
    }


def feature_groups(preprocess: Any, features: Sequence[str]) -> NDArray[np.float64]:
    """[T, K]: 1 where transformed column t encodes input feature k (one-hot columns share a feature)."""
    width = sum(s.stop - s.start for s in preprocess.output_indices_.values())
    groups = np.zeros((width, len(features)), dtype=np.float64)
    for step, transformer, columns in preprocess.transformers_:
        if step == "remainder" or len(columns) == 0:
            continue
        start = preprocess.output_indices_[step].start
        widths = [len(c) for c in transformer.categories_] if step == "categorical" else [1] * len(columns)
        for column, span in zip(columns, widths, strict=True):
            groups[start : start + span, list(features).index(column)] = 1.0
            start += span
    return groups


def constant(name: str, values: NDArray[np.float64]) -> TensorProto:
    return numpy_helper.from_array(values.astype(np.float32), name)


def _schema_kinds(features: Sequence[str]) -> dict[str, Kind]:
    return {name: FEATURES_BY_NAME[name].kind for name in features}


def _input_type(kind: Kind) -> FloatTensorType | StringTensorType:
    return FloatTensorType([None, 1]) if kind == "numeric" else StringTensorType([None, 1])
