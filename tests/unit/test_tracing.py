"""OpenTelemetry, when asked for: one span per scoring batch, linked to its records' trace contexts. Off by
default, and then not even imported."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from streamer.app.pipeline import PipelineService
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy
from streamer.local.synthetic import ApplicationFactory
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, load_entry
from streamer.stages.scoring import BatchTracer, ScoringStage, ScoringTopics
from streamer.tracing import OtelBatchTracer

REPO = Path(__file__).resolve().parents[2]
OTLP = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
TRACE_A, SPAN_A = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACE_B, SPAN_B = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def _record(offset: int, value: bytes, headers: list[tuple[str, str | bytes | None]] | None = None) -> Message:
    return Message(topic="loan-applications", partition=0, offset=offset, key=b"k", value=value, headers=headers,
                   timestamp=(TIMESTAMP_CREATE_TIME, 1_796_000_000_000))


def _stage(tracer: BatchTracer | None) -> ScoringStage:
    slot = ModelSlot(load_entry(champion(REPO / "onnx_models")))
    return ScoringStage(slot, DecisionPolicy(), None, ScoringTopics("loan-decisions", "dlq"), 64_000,
                        "urn:streamer:test", tracer)


class TestBatchSpans:
    def test_a_batch_gets_one_span_linked_to_each_valid_trace_context_of_its_records(self) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        stage = _stage(OtelBatchTracer(provider.get_tracer("test"), "streamer-scorer"))
        factory = ApplicationFactory(seed=8)
        stage.decide([
            _record(0, orjson.dumps(factory.valid()),
                    [("traceparent", f"00-{TRACE_A}-{SPAN_A}-01".encode()), ("tracestate", b"congo=t61")]),
            _record(1, orjson.dumps(factory.valid())),
            _record(2, orjson.dumps(factory.valid()), [("traceparent", b"00-not-a-trace-context-01")]),
            _record(3, b'{"broken', [("traceparent", f"00-{TRACE_B}-{SPAN_B}-00".encode())]),  # a dead letter
        ])

        [span] = exporter.get_finished_spans()
        assert (span.name, span.kind) == ("process loan-applications", SpanKind.CONSUMER)
        assert span.attributes is not None
        assert span.attributes["messaging.batch.message_count"] == 4
        assert (span.attributes["streamer.decisions"], span.attributes["streamer.dead_letters"]) == (3, 1)
        assert span.attributes["messaging.consumer.group.name"] == "streamer-scorer"
        linked = [(link.context.trace_id, link.context.span_id, int(link.context.trace_flags), link.context.is_remote)
                  for link in span.links]
        assert linked == [(int(TRACE_A, 16), int(SPAN_A, 16), 1, True), (int(TRACE_B, 16), int(SPAN_B, 16), 0, True)]
        assert span.links[0].context.trace_state.get("congo") == "t61"
        assert span.context is not None and span.context.trace_id not in (int(TRACE_A, 16), int(TRACE_B, 16)), (
            "a batch of many traces starts its own and links to theirs"
        )
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time


class TestWorkerTracer:
    def test_when_enabled_the_worker_exports_its_spans_through_the_otlp_exporter(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        exported = InMemorySpanExporter()
        monkeypatch.setitem(sys.modules, OTLP, types.SimpleNamespace(OTLPSpanExporter=lambda: exported))
        service = PipelineService(Settings(otel_enabled=True, app_id="traced"))
        tracer = service._batch_tracer()
        assert tracer is not None and service._tracer_shutdown is not None
        _stage(tracer).decide([_record(0, orjson.dumps(ApplicationFactory(seed=9).valid()))])
        service._tracer_shutdown()  # what on_stop does: the queued spans are exported
        [span] = exported.get_finished_spans()
        assert span.resource.attributes["service.name"] == "traced"
        assert span.attributes is not None and span.attributes["messaging.consumer.group.name"] == "traced-scorer"

    def test_enabled_without_the_otlp_exporter_the_worker_refuses_to_start_and_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, OTLP, None)  # an import of it fails, as when it is not installed
        with pytest.raises(RuntimeError, match=r"STREAMER_OTEL_ENABLED=true needs .*otel extra"):
            PipelineService(Settings(otel_enabled=True))._batch_tracer()

    def test_enabled_without_opentelemetry_the_worker_refuses_to_start_and_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delitem(sys.modules, "streamer.tracing")
        monkeypatch.setitem(sys.modules, "opentelemetry", None)
        with pytest.raises(RuntimeError, match=r"needs the otel extra \(pip install 'streamer\[otel\]'\)"):
            PipelineService(Settings(otel_enabled=True))._batch_tracer()


def test_off_by_default_opentelemetry_is_never_imported_not_even_while_scoring() -> None:
    script = """
import sys, orjson
from pathlib import Path
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from streamer.app.pipeline import PipelineService
from streamer.config import Settings
from streamer.core.policy import DecisionPolicy
from streamer.local.synthetic import ApplicationFactory
from streamer.model.registry import champion
from streamer.model.reload import ModelSlot, load_entry
from streamer.stages.scoring import ScoringStage, ScoringTopics

service = PipelineService(Settings())
assert service._batch_tracer() is None
stage = ScoringStage(ModelSlot(load_entry(champion(Path("onnx_models")))), DecisionPolicy(), None,
                     ScoringTopics("loan-decisions", "dlq"), 64_000, "urn:streamer:test")
value = orjson.dumps(ApplicationFactory(seed=1).valid())
traced = Message(topic="loan-applications", partition=0, offset=0, value=value,
                 headers=[("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
                 timestamp=(TIMESTAMP_CREATE_TIME, 1_796_000_000_000))
[decision] = stage.decide([traced]).records
assert dict(decision.headers)["traceparent"]
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "streamer.tracing"))))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
