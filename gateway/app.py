"""The gateway's ASGI application, built by `create_app`.

Storage (the gateway's own database and cache) and the upstream channels are opened in the
lifespan, inside the serving event loop, and closed with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.hospital import HOSPITAL_PATH, HospitalInterface
from gateway.models import MIGRATIONS_DIR, Base
from gateway.rest import router
from gateway.upstreams import Upstreams
from services.common.interceptors import serve_with_deadline
from services.common.runtime import open_storage
from services.common.tracing import current_trace_id

_LOGGER = logging.getLogger(__name__)


AnswerMessage = Callable[[dict[str, str], AsyncIterator[bytes]], Awaitable[tuple[bytes, str]]]
"""(lowercased headers, body chunks) -> (response envelope, trace id): one hospital message."""


async def _bounded_body(headers: dict[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, but never more than limit + 1 bytes read (the excess is refused later)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b" " * (limit + 1)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(parts)


async def _request_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """An ASGI request's body, chunk by chunk, until its end or the client's disconnect."""
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return
        yield event.get("body", b"")
        if not event.get("more_body", False):
            return


class HospitalDoor:
    """The ASGI application the gateway serves. POST to the hospital path is answered here; all
    else (REST, metrics, health, OpenAPI, the lifespan) goes to the FastAPI application.

    Every hospital message would otherwise cross FastAPI's middleware stack, routing and
    request objects: about 0.1 ms of the gateway's CPU per message, a third of a refused one's
    (docs/performance.md, ninth round), for a route that needs none of them. FastAPI keeps
    the route, for the OpenAPI document and for anything that serves the FastAPI application
    alone; both answer through the same `AnswerMessage`."""

    def __init__(self, app: FastAPI, answer: AnswerMessage) -> None:
        self.app = app
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != HOSPITAL_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # ASGI servers give header names in lower case.
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        answer, trace_id = await self._answer(headers, _request_chunks(receive))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", _JSON_UTF8),
                    (b"content-length", str(len(answer)).encode()),
                    (b"x-trace-id", trace_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


_JSON_UTF8 = b"application/json; charset=utf-8"


async def _prune_nonces(hospital: HospitalInterface, every_s: float) -> None:
    """Keep the nonce table to about two windows of traffic."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await hospital.forget_old_nonces()
        except Exception:  # the next round tries again; a failure here must not stop the gateway
            _LOGGER.exception("pruning nonces failed")


def create_app(settings: GatewaySettings, provider: TracerProvider) -> HospitalDoor:
    """The gateway application."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = await open_storage(
            settings,
            Base.metadata,
            MIGRATIONS_DIR,
            provider.get_tracer("gateway"),
            driver_pool_size=settings.message_pool_size,
        )
        upstreams = Upstreams(
            settings.targets(), provider.get_tracer("gateway"), settings.request_timeout_s
        )
        app.state.upstreams = upstreams
        hospital = HospitalInterface(settings, storage, upstreams)
        app.state.metrics = storage.metrics
        app.state.hospital = hospital
        pruning = asyncio.create_task(_prune_nonces(hospital, settings.timestamp_window_s))
        try:
            yield
        finally:
            pruning.cancel()
            await upstreams.close()
            await storage.close()
            # The last requests' spans leave now: after a SIGTERM, uvicorn ends the process by
            # raising the signal again once shutdown is complete, so nothing after
            # uvicorn.run() in __main__ runs.
            provider.force_flush(timeout_millis=5_000)

    tracer = provider.get_tracer("gateway")
    app = FastAPI(
        title="medsettle gateway",
        version="1",
        description="The national hospital interface (POST "
        + HOSPITAL_PATH
        + ") and REST for insured persons and the public.",
        lifespan=lifespan,
        # The gateway makes its own SERVER span per message (gateway/<infno>, the root of a
        # settlement's trace) and its own Prometheus metrics. FastAPI's native telemetry would
        # add four spans per request in a trace of their own, and log refused requests' values.
        telemetry={
            "tracer_provider": provider,
            "tracing": False,
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "auto_configure": False,
        },
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse(
            {"error": {"reason": "INVALID_REQUEST", "message": f"{field}: {first.get('msg')}"}},
            status_code=400,
        )

    @app.post(
        HOSPITAL_PATH,
        summary="National hospital interface (infno in the body selects the transaction)",
        response_description="The national response envelope; refusals are infcode -1",
    )
    async def call_service(request: Request) -> Response:
        headers = {key.lower(): value for key, value in request.headers.items()}
        answer, trace_id = await answer_message(headers, request.stream())
        return Response(answer, media_type=_JSON_UTF8.decode(), headers={"x-trace-id": trace_id})

    async def answer_message(
        headers: dict[str, str], chunks: AsyncIterator[bytes]
    ) -> tuple[bytes, str]:
        # The message's trace starts here (or continues the caller's W3C traceparent); the
        # caller gets its id back in x-trace-id.
        with tracer.start_as_current_span(
            "gateway/callService", context=propagate.extract(headers), kind=SpanKind.SERVER
        ):
            serve_with_deadline(settings.request_timeout_s)
            body = await _bounded_body(headers, chunks, settings.max_body_bytes)
            answer: bytes = await app.state.hospital.handle(headers, body)
            return answer, current_trace_id()

    @app.get("/metrics", summary="Prometheus metrics of the gateway", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Gateway and upstream health")
    async def healthz(request: Request) -> JSONResponse:
        statuses = await request.app.state.upstreams.health()
        serving = all(status == "SERVING" for status in statuses.values())
        return JSONResponse(
            {"status": "SERVING" if serving else "NOT_SERVING", "upstreams": statuses},
            status_code=200 if serving else 503,
        )

    app.include_router(router())
    return HospitalDoor(app, answer_message)
