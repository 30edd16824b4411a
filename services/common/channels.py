"""Outbound channels: one per upstream per process, created at start-up and shared by all calls.

Every call gets a deadline and the trace (ClientCallInterceptor). gRPC retries only the methods
named idempotent, only on UNAVAILABLE (the request was not processed), at most three attempts
with jittered backoff and a retry throttle, inside the same deadline (gRFC A6). Money-moving calls
are made idempotent by their request_id and retried by the application, not by the channel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import grpc
from opentelemetry.trace import Tracer

from services.common.interceptors import ClientCallInterceptor

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def service_config(idempotent_methods: Iterable[tuple[str, str]]) -> str:
    """gRPC service config JSON retrying the given (full service name, method) pairs."""
    names = [{"service": service, "method": method} for service, method in idempotent_methods]
    config: dict[str, object] = {"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}}
    if names:
        config["methodConfig"] = [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.02s",
                    "maxBackoff": "0.2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return json.dumps(config)


def make_channel(
    target: str,
    *,
    tracer: Tracer,
    default_timeout_s: float,
    idempotent_methods: Iterable[tuple[str, str]] = (),
) -> grpc.aio.Channel:
    """An insecure loopback/cluster channel with deadlines, tracing, keepalive and retries."""
    options = [
        ("grpc.service_config", service_config(idempotent_methods)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.aio.insecure_channel(
        target,
        options=options,
        interceptors=[ClientCallInterceptor(tracer, default_timeout_s)],
    )


def make_channels(
    targets: dict[str, str],
    *,
    tracer: Tracer,
    default_timeout_s: float,
    idempotent_methods: Iterable[tuple[str, str]] = (),
) -> dict[str, grpc.aio.Channel]:
    """One channel per named upstream, with the same settings."""
    methods = tuple(idempotent_methods)
    return {
        name: make_channel(
            target,
            tracer=tracer,
            default_timeout_s=default_timeout_s,
            idempotent_methods=methods,
        )
        for name, target in targets.items()
    }
