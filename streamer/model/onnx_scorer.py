"""The ONNX model behind a small interface: load (verified), score a batch, describe itself.

The only module that imports onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas.application import LoanApplication
from schemas.application_fast import Application
from schemas.decision import ModelRef
from streamer.core.decisions import Scores
from streamer.core.features import InputSpec, SchemaMismatch, check_inputs, input_arrays
from streamer.model.external_data import NotProtobuf, external_tensors

PROBABILITY_OUTPUT = "probability_of_default"
CONTRIBUTIONS_OUTPUT = "contributions"
_ONNX_KINDS = {"tensor(float)": "numeric", "tensor(string)": "categorical"}


class ModelLoadError(Exception):
    """An artifact that must not serve: unreadable, tampered with, or not matching the schema.

    `reason` is a fixed vocabulary, used as a metrics label.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class OnnxScorer:
    """A verified ONNX session. Construct with `load`."""

    def __init__(self, session: ort.InferenceSession, ref: ModelRef, specs: tuple[InputSpec, ...]) -> None:
        self._session = session
        self.ref = ref
        self.inputs = specs
        self.feature_names = tuple(s.name for s in specs)

    @classmethod
    def load(cls, path: Path, name: str, version: str, expected_sha256: str) -> OnnxScorer:
        """Read, verify sha256, input names and types against the schema, outputs, and a smoke prediction."""
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read {path}: {exc.strerror}", "unreadable") from exc
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected_sha256:
            raise ModelLoadError(
                f"{path.name}: sha256 {digest} does not match the registry's {expected_sha256}", "sha256_mismatch"
            )
        _refuse_external_data(blob, path)
        session = _session(blob, path)
        specs = _input_specs(session, path)
        scorer = cls(session, ModelRef(name=name, version=version, sha256=digest), specs)
        scorer._check_metadata(session)
        try:
            scorer._smoke_test()
        except ModelLoadError:
            raise
        except Exception as exc:  # onnxruntime's own errors for a graph that cannot run our inputs
            raise ModelLoadError(f"{path.name}: smoke prediction failed: {exc}", "smoke_test_failed") from exc
        return scorer

    def score(self, applications: Sequence[Application]) -> Scores:
        """One ONNX call for the whole batch."""
        feeds = input_arrays(applications, self.inputs)
        probability, contributions = self._session.run([PROBABILITY_OUTPUT, CONTRIBUTIONS_OUTPUT], feeds)
        return Scores(
            probability_of_default=np.asarray(probability, dtype=np.float32).reshape(-1),
            contributions=np.asarray(contributions, dtype=np.float32).reshape(len(applications), -1),
        )

    def _check_metadata(self, session: ort.InferenceSession) -> None:
        metadata = session.get_modelmeta().custom_metadata_map
        declared = metadata.get("feature_names")
        if declared is not None and tuple(json.loads(declared)) != self.feature_names:
            raise ModelLoadError("metadata feature_names differ from the model's inputs", "schema_mismatch")
        for key in ("name", "version"):  # the file must be the artifact the registry says it is
            value = metadata.get(key)
            if value is not None and value != getattr(self.ref, key):
                raise ModelLoadError(
                    f"metadata {key} {value!r} differs from the registry's {getattr(self.ref, key)!r}",
                    "registry_mismatch",
                )
        outputs = {o.name for o in session.get_outputs()}
        missing = {PROBABILITY_OUTPUT, CONTRIBUTIONS_OUTPUT} - outputs
        if missing:
            raise ModelLoadError(f"model lacks outputs {sorted(missing)}", "schema_mismatch")

    def _smoke_test(self) -> None:
        scores = self.score([SMOKE_APPLICATION])
        p = float(scores.probability_of_default[0])
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ModelLoadError(f"smoke prediction is {p}, not a probability", "smoke_test_failed")
        if scores.contributions.shape != (1, len(self.feature_names)):
            raise ModelLoadError(f"contributions have shape {scores.contributions.shape}", "smoke_test_failed")


def _refuse_external_data(blob: bytes, path: Path) -> None:
    """The registry's sha256 covers this file only: weights kept in another file could change unverified."""
    try:
        external = external_tensors(blob)  # reads this file only, never a data file
    except NotProtobuf as exc:  # not an ONNX protobuf at all
        raise ModelLoadError(f"{path.name} is not a loadable ONNX model: {exc}", "not_onnx") from exc
    if external:
        raise ModelLoadError(
            f"{path.name} keeps {len(external)} tensors in external data files, which its sha256 does not cover",
            "external_data",
        )


def _session(blob: bytes, path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # The worker owns its cores: Kafka client threads and the event loop share them with inference.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types for a bad graph
        raise ModelLoadError(f"{path.name} is not a loadable ONNX model: {exc}", "not_onnx") from exc


def _input_specs(session: ort.InferenceSession, path: Path) -> tuple[InputSpec, ...]:
    specs = []
    for node in session.get_inputs():
        kind = _ONNX_KINDS.get(node.type)
        if kind is None:
            message = f"{path.name}: input {node.name!r} has unsupported type {node.type}"
            raise ModelLoadError(message, "schema_mismatch")
        specs.append(InputSpec(node.name, kind))
    try:
        check_inputs(specs)
    except SchemaMismatch as exc:
        raise ModelLoadError(f"{path.name}: {exc}", "schema_mismatch") from exc
    return tuple(specs)


SMOKE_APPLICATION = LoanApplication.model_validate(
    {
        "schema_version": 1,
        "application_id": "smoke-test",
        "applicant_id": "smoke-test",
        "submitted_at": datetime(2026, 1, 1, tzinfo=UTC),
        "loan": {"amount": 2500.0, "currency": "EUR", "term_months": 24, "purpose": "used_car"},
        "applicant": {
            "checking_account": "below_200", "credit_history": "existing_paid_duly", "savings": "below_100",
            "employment_length": "1_to_4_years", "instalment_rate": 3, "other_debtors": "none",
            "years_at_residence": 2, "property": "car_or_other", "age_years": 35,
            "other_instalment_plans": "none", "housing": "own", "existing_credits": 1, "job": "skilled",
            "dependents": 1, "has_telephone": False, "foreign_worker": True, "personal_status": "male_single",
        },
    },
    strict=False,
)
