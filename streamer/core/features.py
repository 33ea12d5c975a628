"""Applications -> the named input arrays an ONNX model declares. Pure: numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.application_fast import Application
from schemas.features import FEATURES_BY_NAME


@dataclass(frozen=True)
class InputSpec:
    """One model input: a feature name and whether the model wants it as float or string."""

    name: str
    kind: str  # "numeric" or "categorical"


class SchemaMismatch(ValueError):
    """The model asks for something the LoanApplication schema does not provide."""


def check_inputs(specs: Sequence[InputSpec]) -> None:
    for spec in specs:
        field = FEATURES_BY_NAME.get(spec.name)
        if field is None:
            raise SchemaMismatch(f"model input {spec.name!r} is not a field of LoanApplication")
        if field.kind != spec.kind:
            raise SchemaMismatch(f"model input {spec.name!r} is {spec.kind}; the schema field is {field.kind}")


def input_arrays(
    applications: Sequence[Application], specs: Sequence[InputSpec]
) -> dict[str, npt.NDArray[np.generic]]:
    """Column arrays shaped [N, 1]: float32 for numeric inputs (flags as 0/1), object for categorical ones.

    Built a column at a time from the validated models, the hot path's cheapest route. Categorical values
    stay StrEnum members: they are `str` instances, which onnxruntime takes as strings.
    """
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for spec in specs:
        field = FEATURES_BY_NAME[spec.name]
        section, attribute = field.section, field.attribute
        values = [getattr(getattr(a, section), attribute) for a in applications]
        dtype = np.float32 if spec.kind == "numeric" else np.object_
        arrays[spec.name] = np.asarray(values, dtype=dtype).reshape(-1, 1)
    return arrays
