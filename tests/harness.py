"""Running one service in-process on a loopback port, for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.common.channels import make_channel
from services.common.config import ServiceSettings
from services.common.errors import error_info
from services.common.runtime import Storage
from services.common.server import Registrar, start_server


@asynccontextmanager
async def serving(
    settings: ServiceSettings, storage: Storage, register: Registrar, provider: TracerProvider
) -> AsyncIterator[grpc.aio.Channel]:
    """Start the service's server on a free port; yield a channel to it; stop and close after."""
    running = await start_server(
        register,
        host="127.0.0.1",
        port=0,
        tracer=provider.get_tracer(settings.service_name),
        error_domain=f"{settings.service_name}.medsettle",
        max_concurrent_rpcs=256,
        metrics=storage.metrics,
    )
    channel = make_channel(
        f"127.0.0.1:{running.port}", tracer=provider.get_tracer("test"), default_timeout_s=30
    )
    try:
        yield channel
    finally:
        await channel.close()
        await running.stop(0)
        await storage.close()


def national() -> tuple[tuple[str, str], ...]:
    """Call metadata of the national platform."""
    return (("x-medsettle-caller", "national"),)


def province(code: str) -> tuple[tuple[str, str], ...]:
    """Call metadata of a provincial platform."""
    return (("x-medsettle-caller", f"province:{code[:2]}0000"),)


async def refusal(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    """The status code and ErrorInfo reason a call fails with (it must fail with one)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    info = error_info(raised.value)
    assert info is not None, "the status carries no ErrorInfo"
    return raised.value.code(), info.reason
