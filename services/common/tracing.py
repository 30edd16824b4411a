"""OpenTelemetry setup: one TracerProvider per process.

Spans go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and nowhere otherwise;
tests hand in an InMemorySpanExporter. Context crosses processes as W3C traceparent (HTTP headers,
gRPC metadata). Span names are `<service>/<Method>`, attributes `medsettle.*`; never names, ID
numbers or card numbers.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)


def make_tracer_provider(service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider for one process; `exporter` (tests) is flushed synchronously on span end."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def install_tracer_provider(provider: TracerProvider) -> None:
    """Make provider the process-wide default (only __main__ does this; tests pass providers in)."""
    trace.set_tracer_provider(provider)
