"""OpenTelemetry spans of the scoring batches (STREAMER_OTEL_ENABLED, the `otel` extra).

The only module that imports OpenTelemetry, and it is imported only when tracing is on (`batch_tracer`):
off, tracing costs nothing. A batch holds records of many traces, so its span starts a trace of its own and
links to each record's context, as OpenTelemetry's messaging conventions do for batch processing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import Message

from streamer.config import Settings
from streamer.core.trace_context import parse_traceparent, trace_headers

try:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
except ImportError as exc:  # the extra is optional; a worker asked to trace without it must not start
    raise RuntimeError(
        f"STREAMER_OTEL_ENABLED=true needs the otel extra (pip install 'streamer[otel]'): {exc}"
    ) from exc

_OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class OtelBatchTracer:
    """A `scoring.BatchTracer`: one CONSUMER span per scoring batch, `process <topic>`."""

    def __init__(self, tracer: trace.Tracer, consumer_group: str) -> None:
        self._tracer = tracer
        self._group = consumer_group

    def batch_decided(self, batch: Sequence[Message], started_ns: int, decisions: int, dead_letters: int) -> None:
        topic = (batch[0].topic() or "") if batch else ""
        span = self._tracer.start_span(
            f"process {topic}", kind=SpanKind.CONSUMER, start_time=started_ns, links=_links(batch),
            attributes={
                "messaging.system": "kafka", "messaging.operation.type": "process",
                "messaging.operation.name": "process", "messaging.destination.name": topic,
                "messaging.consumer.group.name": self._group, "messaging.batch.message_count": len(batch),
                "streamer.decisions": decisions, "streamer.dead_letters": dead_letters,
            },
        )
        span.end(time.time_ns())


def batch_tracer(settings: Settings) -> tuple[OtelBatchTracer, TracerProvider]:
    """The worker's tracer, exporting over OTLP/HTTP (the exporter reads OTEL_EXPORTER_OTLP_*), and its
    provider, to be shut down (flushing the spans still queued) when the worker stops."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 (part of the extra)
            OTLPSpanExporter,
        )
    except ImportError as exc:
        raise RuntimeError(f"STREAMER_OTEL_ENABLED=true needs {_OTLP_EXPORTER} (the otel extra): {exc}") from exc
    provider = TracerProvider(resource=Resource.create({"service.name": settings.app_id}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return OtelBatchTracer(provider.get_tracer("streamer.scoring"), settings.scorer_group()), provider


def _links(batch: Sequence[Message]) -> list[Link]:
    """A link per record with a valid traceparent (`trace_headers`' rules). The SDK keeps the first 128
    (OTEL_SPAN_LINK_COUNT_LIMIT)."""
    links = []
    for message in batch:
        carried = trace_headers(message.headers())
        parent = parse_traceparent(carried[0][1]) if carried else None
        if parent is None:
            continue
        state = _text(carried[1][1]) if len(carried) > 1 else None
        context = SpanContext(parent.trace_id, parent.span_id, is_remote=True, trace_flags=TraceFlags(parent.flags),
                              trace_state=TraceState.from_header([state]) if state else None)
        links.append(Link(context))
    return links


def _text(value: str | bytes | None) -> str | None:
    return value.decode("ascii") if isinstance(value, bytes) else value
