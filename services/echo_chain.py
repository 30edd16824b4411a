"""A bare gRPC echo chain: the floor the mesh's per-hop cost is compared with.

`python -m services.echo_chain --port P [--next HOST:PORT]` serves one raw-bytes unary method;
with `--next` it forwards each call there and returns the answer, so four processes make a
4-hop chain like gateway → settlement → filing (→ database). No protobuf, no interceptors, no
storage: only grpc.aio with uvloop, as the services use.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import grpc
import uvloop

from services.common.supervision import exit_with_parent

METHOD = "/medsettle.bench.Echo/Call"


def _passthrough(value: bytes) -> bytes:
    return value


async def serve(port: int, next_hop: str) -> None:
    """Serve until cancelled."""
    channel = grpc.aio.insecure_channel(next_hop) if next_hop else None
    forward = (
        channel.unary_unary(
            METHOD, request_serializer=_passthrough, response_deserializer=_passthrough
        )
        if channel is not None
        else None
    )

    async def call(request: bytes, context: Any) -> bytes:
        if forward is None:
            return request
        answer: bytes = await forward(request, timeout=5)
        return answer

    handler = grpc.method_handlers_generic_handler(
        "medsettle.bench.Echo",
        {
            "Call": grpc.unary_unary_rpc_method_handler(
                call, request_deserializer=_passthrough, response_serializer=_passthrough
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description="one hop of the bare gRPC echo chain")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--next", default="", help="host:port of the next hop; none = the end")
    args = parser.parse_args()
    # Ctrl-C reaches the whole process group: the bench that started this server stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    uvloop.run(serve(args.port, args.next))


if __name__ == "__main__":
    main()
