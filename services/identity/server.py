"""Assembles the identity service: storage, servicers, gRPC server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from medsettle.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.runtime import Storage, open_storage, serve_until_stopped
from services.common.server import Registrar
from services.common.server import registrar as common_registrar
from services.identity.config import IdentitySettings
from services.identity.models import Base
from services.identity.servicer import IdentityServicer

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = identity_service_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


def registrar(servicer: IdentityServicer) -> Registrar:
    """Adds the identity servicer to a server (health and reflection come from services.common)."""
    return common_registrar(
        identity_service_pb2_grpc.add_IdentityServiceServicer_to_server, servicer, SERVICE_NAME
    )


def build_servicer(settings: IdentitySettings, storage: Storage) -> IdentityServicer:
    """The servicer with its dependencies."""
    return IdentityServicer(
        storage.sessions,
        settings.voucher_signer(),
        dt.timedelta(seconds=settings.voucher_ttl_s),
        storage.autocommit,
        storage.driver,
    )


async def serve(settings: IdentitySettings, provider: TracerProvider) -> None:
    """Run the identity service until SIGTERM/SIGINT."""
    storage = await open_storage(
        settings,
        Base.metadata,
        MIGRATIONS_DIR,
        provider.get_tracer(settings.service_name),
        driver_pool_size=settings.lookup_pool_size,
    )
    servicer = build_servicer(settings, storage)
    await serve_until_stopped(settings, storage, registrar(servicer), provider)
