"""The shared gRPC runtime on loopback servers: errors, deadlines, traces, health, reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import column, insert, table, text

from services.common.channels import make_channel
from services.common.db import make_engine, make_session_factory
from services.common.driver import DriverPool, DriverStatement
from services.common.errors import NotFound, error_info
from services.common.interceptors import remaining_time
from services.common.server import RunningServer, start_server

SERVICE = "medsettle.test.v1.ProbeService"
Handler = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]


def registrar(handler: Handler) -> Callable[[grpc.aio.Server], list[str]]:
    """Registers one raw-bytes unary method `Call` under SERVICE."""

    def register(server: grpc.aio.Server) -> list[str]:
        generic = grpc.method_handlers_generic_handler(
            SERVICE, {"Call": grpc.unary_unary_rpc_method_handler(handler)}
        )
        server.add_generic_rpc_handlers((generic,))
        return [SERVICE]

    return register


async def start(handler: Handler, provider: TracerProvider, name: str) -> RunningServer:
    return await start_server(
        registrar(handler),
        host="127.0.0.1",
        port=0,
        tracer=provider.get_tracer(name),
        error_domain=f"{name}.medsettle",
        max_concurrent_rpcs=16,
    )


def call(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(f"/{SERVICE}/Call")


@pytest.fixture
async def servers() -> AsyncIterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for running in started:
        await running.stop(0)


async def test_domain_error_reaches_the_client_as_status_with_error_info(
    tracer_provider: TracerProvider, servers: list[RunningServer]
) -> None:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise NotFound("person P9 is not known", psnNo="P9")

    servers.append(await start(refuse, tracer_provider, "identity"))
    channel = make_channel(
        f"127.0.0.1:{servers[0].port}", tracer=tracer_provider.get_tracer("c"), default_timeout_s=2
    )
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel)(b"x")
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "person P9 is not known"
    info = error_info(raised.value)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "NOT_FOUND",
        "identity.medsettle",
        {"psnNo": "P9"},
    )


async def test_unexpected_exception_is_internal_without_its_text(
    tracer_provider: TracerProvider, servers: list[RunningServer]
) -> None:
    async def crash(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise ValueError("secret database detail")

    servers.append(await start(crash, tracer_provider, "filing"))
    channel = make_channel(
        f"127.0.0.1:{servers[0].port}", tracer=tracer_provider.get_tracer("c"), default_timeout_s=2
    )
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel)(b"x")
    assert raised.value.code() is grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ZY\x00", "a string holds a NUL character (\\u0000), which cannot be stored"),
        (
            "ZY-1234",
            "a string is longer than its field allows "
            "(value too long for type character varying(6))",
        ),
    ],
)
@pytest.mark.parametrize("through", ["sqlalchemy", "driver"])
async def test_a_string_postgresql_cannot_store_is_the_caller_s_invalid_argument(
    tracer_provider: TracerProvider,
    servers: list[RunningServer],
    postgres_url: str,
    value: str,
    message: str,
    through: str,
) -> None:
    engine = make_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE visit (ipt_no varchar(6))"))
    # The driver (services.common.driver) raises asyncpg's exception itself, not SQLAlchemy's.
    driver = await DriverPool.open(postgres_url, 1)
    assert driver is not None
    insert_visit = DriverStatement.of(insert(table("visit", column("ipt_no"))), ["ipt_no"])

    async def store(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        if through == "driver":
            assert driver is not None
            await driver.execute(insert_visit, {"ipt_no": value})
            return b"stored"
        async with make_session_factory(engine).begin() as session:
            await session.execute(text("INSERT INTO visit VALUES (:ipt_no)"), {"ipt_no": value})
        return b"stored"

    servers.append(await start(store, tracer_provider, "settlement"))
    channel = make_channel(
        f"127.0.0.1:{servers[0].port}", tracer=tracer_provider.get_tracer("c"), default_timeout_s=2
    )
    try:
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(channel)(b"x")
    finally:
        await driver.close()
        await engine.dispose()
    assert (raised.value.code(), raised.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
    )
    info = error_info(raised.value)
    assert info is not None and info.reason == "INVALID_ARGUMENT"


async def test_deadline_and_trace_pass_through_three_hops(
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    servers: list[RunningServer],
) -> None:
    seen_remaining: list[float] = []

    async def leaf(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        seen_remaining.append(context.time_remaining() or 0.0)
        return b"leaf:" + request

    servers.append(await start(leaf, tracer_provider, "catalogue"))
    leaf_channel = make_channel(
        f"127.0.0.1:{servers[-1].port}",
        tracer=tracer_provider.get_tracer("m"),
        default_timeout_s=30,
    )

    async def middle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        # The middle hop sets no timeout itself: the interceptor must pass the budget on.
        assert remaining_time() is not None
        reply: bytes = await call(leaf_channel)(request)
        return reply

    servers.append(await start(middle, tracer_provider, "settlement"))
    channel = make_channel(
        f"127.0.0.1:{servers[-1].port}",
        tracer=tracer_provider.get_tracer("gw"),
        default_timeout_s=30,
    )
    async with channel:
        assert await call(channel)(b"bill", timeout=1.5) == b"leaf:bill"
    await leaf_channel.close()

    assert len(seen_remaining) == 1
    assert 0.5 < seen_remaining[0] < 1.5  # the 1.5 s budget, less time spent and the margin
    spans = span_exporter.get_finished_spans()
    assert len({span.context.trace_id for span in spans}) == 1
    by_kind = {(span.kind, span.resource.attributes["service.name"]): span for span in spans}
    servers_spans = sorted(
        (span for span in spans if span.kind is SpanKind.SERVER), key=lambda s: s.start_time or 0
    )
    clients = sorted(
        (span for span in spans if span.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert [span.name for span in servers_spans] == ["ProbeService/Call"] * 2
    assert len(clients) == 2 and by_kind
    # client(gw) -> server(middle) -> client(middle) -> server(leaf)
    assert servers_spans[0].parent is not None
    assert servers_spans[0].parent.span_id == clients[0].context.span_id
    assert clients[1].parent is not None
    assert clients[1].parent.span_id == servers_spans[0].context.span_id
    assert servers_spans[1].parent is not None
    assert servers_spans[1].parent.span_id == clients[1].context.span_id


async def test_call_with_exhausted_budget_fails_fast_without_reaching_the_next_hop(
    tracer_provider: TracerProvider, servers: list[RunningServer]
) -> None:
    leaf_calls = 0

    async def leaf(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        nonlocal leaf_calls
        leaf_calls += 1
        return request

    servers.append(await start(leaf, tracer_provider, "catalogue"))
    leaf_channel = make_channel(
        f"127.0.0.1:{servers[-1].port}",
        tracer=tracer_provider.get_tracer("m"),
        default_timeout_s=30,
    )

    async def slow_middle(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await asyncio.sleep(0.3)  # uses up the caller's whole budget
        try:
            await call(leaf_channel)(request)
        except grpc.aio.AioRpcError as error:
            return error.code().name.encode()
        return b"reached"

    servers.append(await start(slow_middle, tracer_provider, "settlement"))
    channel = make_channel(
        f"127.0.0.1:{servers[-1].port}",
        tracer=tracer_provider.get_tracer("gw"),
        default_timeout_s=30,
    )
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(channel)(b"x", timeout=0.25)
    await asyncio.sleep(0.2)
    await leaf_channel.close()
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert leaf_calls == 0


async def test_server_reports_serving_and_lists_services_by_reflection(
    tracer_provider: TracerProvider, servers: list[RunningServer]
) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return request

    servers.append(await start(echo, tracer_provider, "clearing"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{servers[0].port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in reflection.ServerReflectionInfo(iter([request]), timeout=2):
            names = {service.name for service in reply.list_services_response.service}
    assert names == {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    await servers[0].health.enter_graceful_shutdown()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{servers[0].port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=2
        )
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
