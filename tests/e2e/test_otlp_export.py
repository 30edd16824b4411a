"""A mesh started with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from services.common.mesh import Mesh
from tests.e2e.conftest import mesh_config

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps the service.name of every process that exported spans."""

    def __init__(self) -> None:
        self.services: set[str] = set()
        self.spans = 0

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    self.services.add(attribute.value.string_value)
            self.spans += sum(len(scope.spans) for scope in resource_spans.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def _collector_server(collector: Collector) -> tuple[grpc.aio.Server, int]:
    """A running OTLP/gRPC endpoint that hands what it receives to collector; (server, port)."""
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _exporting_mesh(data_dir: Path, port: int, schedule_delay_ms: int) -> Mesh:
    """A mesh whose processes export to 127.0.0.1:port every schedule_delay_ms."""
    return Mesh(
        mesh_config(
            data_dir,
            extra_env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
                "OTEL_BSP_SCHEDULE_DELAY": str(schedule_delay_ms),
            },
        )
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def collected(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Collector, Mesh]]:
    collector = Collector()
    server, port = await _collector_server(collector)
    mesh = _exporting_mesh(tmp_path_factory.mktemp("otlp"), port, schedule_delay_ms=200)
    await mesh.start()
    yield collector, mesh
    await mesh.stop()
    await server.stop(0)


async def test_every_process_exports_spans_to_the_otlp_endpoint(
    collected: tuple[Collector, Mesh],
) -> None:
    collector, mesh = collected
    async with httpx.AsyncClient() as client:
        # Health checks pass through the gateway to every service; each answers in its own span.
        for _ in range(3):
            await client.get(mesh.config.endpoints()["gateway"] + "/healthz")
            await client.post(
                mesh.config.endpoints()["gateway"] + "/fsi/api/rsfComIfsService/callService",
                content=b"{}",
            )
    for _ in range(100):
        if "gateway" in collector.services and collector.spans:
            break
        await asyncio.sleep(0.1)
    assert "gateway" in collector.services
    assert collector.spans > 0


async def test_the_gateway_sends_its_last_spans_before_it_stops(tmp_path: Path) -> None:
    collector = Collector()
    server, port = await _collector_server(collector)
    # Batches leave every 10 minutes: only the flush at shutdown can send them within the test.
    mesh = _exporting_mesh(tmp_path, port, schedule_delay_ms=600_000)
    await mesh.start()
    try:
        async with httpx.AsyncClient() as client:
            await client.post(
                mesh.config.endpoints()["gateway"] + "/fsi/api/rsfComIfsService/callService",
                content=b"{}",
            )
        assert "gateway" not in collector.services
    finally:
        await mesh.stop()
        await server.stop(1)
    assert "gateway" in collector.services
