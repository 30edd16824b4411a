"""The gateway's ASGI application, built by `create_app`; one gRPC channel per upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from gateway.config import GatewaySettings
from services.common.channels import make_channel


class Upstreams:
    """The gateway's channels to the services, opened at start-up and shared by all requests."""

    def __init__(self, settings: GatewaySettings, provider: TracerProvider) -> None:
        tracer = provider.get_tracer("gateway")
        self.channels: dict[str, grpc.aio.Channel] = {
            name: make_channel(target, tracer=tracer, default_timeout_s=settings.request_timeout_s)
            for name, target in settings.targets().items()
        }

    async def health(self) -> dict[str, str]:
        """Each upstream's gRPC health status name (UNAVAILABLE when it does not answer)."""

        async def check(channel: grpc.aio.Channel) -> str:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

        names = list(self.channels)
        statuses = await asyncio.gather(*(check(self.channels[name]) for name in names))
        return dict(zip(names, statuses, strict=True))

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))


def create_app(settings: GatewaySettings, provider: TracerProvider) -> FastAPI:
    """The gateway application; its upstream channels live as long as the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Channels belong to the event loop that serves requests, so they are opened here.
        app.state.upstreams = Upstreams(settings, provider)
        yield
        await app.state.upstreams.close()

    app = FastAPI(title="medsettle gateway", version="1", lifespan=lifespan)

    @app.get("/healthz", summary="Gateway and upstream health")
    async def healthz(request: Request) -> JSONResponse:
        statuses = await request.app.state.upstreams.health()
        serving = all(status == "SERVING" for status in statuses.values())
        return JSONResponse(
            {"status": "SERVING" if serving else "NOT_SERVING", "upstreams": statuses},
            status_code=200 if serving else 503,
        )

    return app
