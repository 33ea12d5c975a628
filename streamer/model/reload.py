"""Picks up a promoted model without a restart.

Polls the registry (either backend, `streamer.model.registry`); when its champion differs from the serving
model, loads the new file into a new session and verifies it (sha256, input names, metadata, smoke
prediction) off the hot path, then swaps the slot's reference, which the scoring stage reads once per batch.
On any failure the old model keeps serving, and the log and `streamer_model_load_failures_total` say why.
A registry that does not answer changes nothing either: `streamer_model_registry_up` drops to 0 and the
outage is logged once, when it starts and when it ends.
"""

from __future__ import annotations

from streamer import metrics
from streamer.logging import get_logger
from streamer.model.onnx_scorer import ModelLoadError, OnnxScorer
from streamer.model.registry import ModelEntry, ModelRegistry, RegistryError, RegistryUnreachable

log = get_logger(__name__)


class ModelSlot:
    """Holds the serving model; a swap is one reference assignment, so it lands between batches."""

    def __init__(self, scorer: OnnxScorer) -> None:
        self.current = scorer


def load_entry(entry: ModelEntry) -> OnnxScorer:
    return OnnxScorer.load(entry.path, entry.name, entry.version, entry.sha256)


def publish_model_info(scorer: OnnxScorer) -> None:
    metrics.MODEL_INFO.clear()
    metrics.MODEL_INFO.labels(scorer.ref.name, scorer.ref.version, scorer.ref.sha256).set(1)


class ModelWatcher:
    def __init__(self, registry: ModelRegistry, slot: ModelSlot) -> None:
        self._registry = registry
        self._slot = slot
        self._refused: tuple[str, str] | None = None  # (artifact id, sha256) already tried and refused
        self._unreachable = False

    def check(self) -> bool:
        """Swap in the registry's champion if it changed and verifies; True when a swap happened."""
        try:
            entry = self._registry.champion()
        except RegistryUnreachable as exc:
            self._reachable(False, str(exc))
            return False
        except RegistryError as exc:
            self._reachable(True)
            self._refuse(("<registry>", str(exc)), "registry_unreadable", str(exc))
            return False
        self._reachable(True)
        serving = self._slot.current.ref
        if (entry.name, entry.version, entry.sha256) == (serving.name, serving.version, serving.sha256):
            self._refused = None
            return False
        candidate = (entry.artifact_id, entry.sha256)
        if candidate == self._refused:
            return False
        try:
            scorer = load_entry(entry)
        except ModelLoadError as exc:
            self._refuse(candidate, exc.reason, str(exc))
            return False
        self._slot.current = scorer
        self._refused = None
        publish_model_info(scorer)
        metrics.MODEL_SWAPS.inc()
        log.info("model_swapped", previous=f"{serving.name}-{serving.version}", current=entry.artifact_id,
                 sha256=entry.sha256)
        return True

    def _refuse(self, candidate: tuple[str, str], reason: str, detail: str) -> None:
        if candidate == self._refused:
            return  # said once; the registry has not changed since
        self._refused = candidate
        metrics.MODEL_LOAD_FAILURES.labels(reason).inc()
        serving = self._slot.current.ref
        log.error("model_refused", candidate=candidate[0], reason=reason, detail=detail,
                  still_serving=f"{serving.name}-{serving.version}")

    def _reachable(self, up: bool, detail: str = "") -> None:
        metrics.MODEL_REGISTRY_UP.set(1 if up else 0)
        if up == (not self._unreachable):
            return  # no change: an outage is logged when it starts and when it ends
        self._unreachable = not up
        serving = self._slot.current.ref
        if up:
            log.info("model_registry_reachable", registry=self._registry.name)
        else:
            log.warning("model_registry_unreachable", registry=self._registry.name, detail=detail,
                        still_serving=f"{serving.name}-{serving.version}")
