"""Which spans a process records, by where they can go."""

from __future__ import annotations

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.common.tracing import current_trace_id, make_tracer_provider


def _remote_parent(sampled: bool) -> context.Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent))


def test_with_nowhere_to_send_spans_a_new_trace_has_valid_ids_but_records_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracer = make_tracer_provider("test").get_tracer("test")
    with tracer.start_as_current_span("gateway/2304") as root:
        assert not root.is_recording()
        assert len(current_trace_id()) == 32 and int(current_trace_id(), 16) != 0
        child = tracer.start_span("db SELECT")
        assert not child.is_recording()
        assert child.get_span_context().trace_id == root.get_span_context().trace_id
        assert child.get_span_context().span_id != root.get_span_context().span_id


def test_with_nowhere_to_send_spans_a_trace_sampled_upstream_is_still_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracer = make_tracer_provider("test").get_tracer("test")
    sampled = tracer.start_span("SettlementService/SettleVisit", context=_remote_parent(True))
    unsampled = tracer.start_span("SettlementService/SettleVisit", context=_remote_parent(False))
    assert sampled.is_recording() and sampled.get_span_context().trace_id == 0xABC
    assert not unsampled.is_recording() and unsampled.get_span_context().trace_id == 0xABC


def test_a_process_given_an_exporter_records_and_exports_every_span() -> None:
    exporter = InMemorySpanExporter()
    tracer = make_tracer_provider("test", exporter).get_tracer("test")
    with tracer.start_as_current_span("gateway/2304"):
        tracer.start_span("db SELECT").end()
    assert [span.name for span in exporter.get_finished_spans()] == ["db SELECT", "gateway/2304"]
