"""gRPC interceptors: the one place where every call gets a span, a deadline and an error mapping.

Server side (`ServerCallInterceptor`): continues the caller's trace, remembers the inbound deadline
for this task, and turns DomainError into a status with an ErrorInfo; any other exception is
logged and answered as INTERNAL "internal error" (never the exception text).

Client side (`ClientCallInterceptor`): puts a deadline on every outbound call (the inbound deadline
minus a margin when one is being served, else the default) and passes the trace on. Python gRPC
propagates neither by itself.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, cast

import grpc
from grpc_status import rpc_status
from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from services.common.errors import DomainError, InvalidArgument
from services.common.metrics import ProcessMetrics

_LOGGER = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

# Absolute time.monotonic() deadline of the inbound call this task is serving, if any.
_INBOUND_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "medsettle_inbound_deadline", default=None
)

# Time kept back for the reply to travel home once the next hop has answered.
DEADLINE_MARGIN_S = 0.02
# Below this much remaining time an outbound call is not even attempted.
DEADLINE_FLOOR_S = 0.005


def remaining_time() -> float | None:
    """Seconds left of the inbound deadline being served, or None outside a deadline."""
    deadline = _INBOUND_DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def serve_with_deadline(seconds: float | None) -> contextvars.Token[float | None]:
    """Record an inbound budget for this task (the gateway uses it for HTTP requests)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    return _INBOUND_DEADLINE.set(deadline)


def _refused_value(error: BaseException) -> str | None:
    """What was wrong with a string PostgreSQL refused to store (too long for its column, or
    holding a NUL), found among the exception's causes; None for any other failure."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        sqlstate = getattr(seen, "sqlstate", None)
        if sqlstate == _STRING_TOO_LONG:
            # PostgreSQL's words name the column's type, never the value.
            found = _TOO_LONG_FOR_TYPE.search(str(seen))
            return "a string is longer than its field allows" + (
                f" ({found.group(0)})" if found else ""
            )
        if sqlstate == _CHARACTER_NOT_IN_REPERTOIRE and "0x00" in str(seen):
            return "a string holds a NUL character (\\u0000), which cannot be stored"
        seen = seen.__cause__ or seen.__context__
    return None


# SQLSTATEs of data exceptions that only a caller's string can cause here.
_STRING_TOO_LONG = "22001"
_CHARACTER_NOT_IN_REPERTOIRE = "22021"
_TOO_LONG_FOR_TYPE = re.compile(r"value too long for type [a-z ]+\(\d+\)")


def _method_name(full_method: str) -> str:
    # "/medsettle.filing.v1.FilingService/GetFiling" -> "FilingService/GetFiling"
    return full_method.rsplit(".", 1)[-1]


class ServerCallInterceptor(grpc.aio.ServerInterceptor):
    """Trace, deadline and error handling for every inbound RPC of a service."""

    def __init__(
        self, tracer: Tracer, error_domain: str, metrics: ProcessMetrics | None = None
    ) -> None:
        self._tracer = tracer
        self._domain = error_domain
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None:
            raise RuntimeError(f"no handler for {details.method}")  # grpc answers UNIMPLEMENTED
        if details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        metadata = {key: value for key, value in details.invocation_metadata or ()}
        span_name = _method_name(details.method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, span_name, metadata),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, span_name, metadata),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(cast(Any, handler.unary_stream), span_name, metadata),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _server_span(
        self, context: Context, span_name: str, metadata: dict[str, Any]
    ) -> AbstractContextManager[Span]:
        """Remember the inbound deadline for this task and open the call's span in its trace."""
        remaining = context.time_remaining()
        # grpc reports a huge number (not None) when the caller set no deadline.
        serve_with_deadline(remaining if remaining is not None and remaining < 1e9 else None)
        return self._tracer.start_as_current_span(
            span_name,
            context=propagate.extract(metadata),
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def _fail(self, error: Exception, context: Context, span: Any) -> None:
        refused = _refused_value(error)
        if refused is not None:
            # Input that a service's own checks let through: the caller's fault all the same,
            # and the transaction it failed was rolled back.
            error = InvalidArgument(refused)
        if isinstance(error, DomainError):
            span.set_attribute("medsettle.error.reason", error.reason)
            span.set_status(Status(StatusCode.ERROR, error.reason))
            await context.abort_with_status(rpc_status.to_status(error.to_status(self._domain)))
        _LOGGER.exception("unhandled error in %s", span.name)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def _wrap_unary(
        self, behaviour: Callable[..., Awaitable[Any]], span_name: str, metadata: dict[str, Any]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def wrapped(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            with self._server_span(context, span_name, metadata) as span:
                try:
                    return await behaviour(request, context)
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as error:
                    await self._fail(error, context, span)
                finally:
                    self._observe(span_name, context, started)

        return wrapped

    def _observe(self, method: str, context: Context, started: float) -> None:
        if self._metrics is None:
            return
        code = context.code()
        name = code.name if isinstance(code, grpc.StatusCode) else "OK"
        self._metrics.observe_rpc(method, name, time.perf_counter() - started)

    def _wrap_stream(
        self, behaviour: Callable[..., AsyncIterator[Any]], span_name: str, metadata: dict[str, Any]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            with self._server_span(context, span_name, metadata) as span:
                try:
                    async for response in behaviour(request, context):
                        yield response
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as error:
                    await self._fail(error, context, span)

        return wrapped


class ClientCallInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
):
    """Deadline and trace propagation on every outbound call of a channel."""

    def __init__(self, tracer: Tracer, default_timeout_s: float) -> None:
        self._tracer = tracer
        self._default_timeout_s = default_timeout_s

    def _timeout(self, details: grpc.aio.ClientCallDetails) -> float:
        candidates = [self._default_timeout_s]
        if details.timeout is not None:
            candidates.append(details.timeout)
        remaining = remaining_time()
        if remaining is not None:
            candidates.append(remaining - DEADLINE_MARGIN_S)
        timeout = min(candidates)
        if timeout < DEADLINE_FLOOR_S:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details=f"deadline exceeded before calling {_decode(details.method)}",
            )
        return timeout

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        for key, value in carrier.items():
            metadata.add(key, value)
        return grpc.aio.ClientCallDetails(
            details.method,
            self._timeout(details),
            metadata,
            details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        name = _method_name(_decode(details.method))
        with self._tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
            call = await continuation(self._details(details), request)
            code = await call.code()
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            return call

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        details: grpc.aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


def _decode(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method
