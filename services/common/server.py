"""Building and running a service's grpc.aio server: health, reflection, interceptors, shutdown.

`start_server` binds and starts (tests use port 0 and read the bound port back); `serve_forever`
waits for SIGTERM/SIGINT, reports NOT_SERVING, lets in-flight calls finish within the grace period
and stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import Tracer

from services.common.channels import MAX_MESSAGE_BYTES
from services.common.interceptors import ServerCallInterceptor
from services.common.metrics import ProcessMetrics

_LOGGER = logging.getLogger(__name__)

# Adds the service's servicers to the server and returns their full service names.
Registrar = Callable[[grpc.aio.Server], Sequence[str]]


def registrar(
    add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: object, service_name: str
) -> Registrar:
    """A Registrar adding one generated servicer (`add_XServicer_to_server`) under its name."""

    def register(server: grpc.aio.Server) -> Sequence[str]:
        add_to_server(servicer, server)
        return [service_name]

    return register


@dataclass
class RunningServer:
    """A started server and what is needed to stop it well."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: Sequence[str]

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, then let calls in flight finish for up to grace_s."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(
    register: Registrar,
    *,
    host: str,
    port: int,
    tracer: Tracer,
    error_domain: str,
    max_concurrent_rpcs: int,
    metrics: ProcessMetrics | None = None,
) -> RunningServer:
    """Build, bind and start a server; every registered service reports SERVING."""
    server = grpc.aio.server(
        interceptors=[ServerCallInterceptor(tracer, error_domain, metrics)],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            # A second copy on the same port must fail loudly, not steal half the traffic.
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    _LOGGER.info("serving %s on %s:%d", ", ".join(names) or "health only", host, bound)
    return RunningServer(server, health_servicer, bound, names)


async def wait_for_stop_signal() -> None:
    """Return when SIGTERM or SIGINT arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
