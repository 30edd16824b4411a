"""Assembles the identity service: storage, servicers, gRPC server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from medsettle.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.runtime import Storage, open_storage, serve_until_stopped
from services.identity.config import IdentitySettings
from services.identity.models import Base
from services.identity.servicer import IdentityServicer

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


def registrar(servicer: IdentityServicer) -> Callable[[grpc.aio.Server], Sequence[str]]:
    """Adds the identity servicer to a server (health and reflection come from services.common)."""

    def register(server: grpc.aio.Server) -> Sequence[str]:
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    return register


def build_servicer(settings: IdentitySettings, storage: Storage) -> IdentityServicer:
    """The servicer with its dependencies."""
    return IdentityServicer(
        storage.sessions,
        settings.voucher_signer(),
        dt.timedelta(seconds=settings.voucher_ttl_s),
    )


async def serve(settings: IdentitySettings, provider: TracerProvider) -> None:
    """Run the identity service until SIGTERM/SIGINT."""
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    servicer = build_servicer(settings, storage)
    await serve_until_stopped(settings, storage, registrar(servicer), provider)
