"""Assembles the filing service: storage, servicers, gRPC server."""

from __future__ import annotations

from pathlib import Path

from medsettle.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.runtime import Storage, open_storage, serve_until_stopped
from services.common.server import Registrar
from services.common.server import registrar as common_registrar
from services.filing.config import FilingSettings
from services.filing.models import Base
from services.filing.servicer import FilingServicer

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = filing_service_pb2.DESCRIPTOR.services_by_name["FilingService"].full_name


def registrar(servicer: FilingServicer) -> Registrar:
    """Adds the filing servicer to a server (health and reflection come from services.common)."""
    return common_registrar(
        filing_service_pb2_grpc.add_FilingServiceServicer_to_server, servicer, SERVICE_NAME
    )


def build_servicer(settings: FilingSettings, storage: Storage) -> FilingServicer:
    """The servicer with its dependencies."""
    return FilingServicer(storage.sessions, settings.lock_months_for, storage.autocommit)


async def serve(settings: FilingSettings, provider: TracerProvider) -> None:
    """Run the filing service until SIGTERM/SIGINT."""
    storage = await open_storage(
        settings, Base.metadata, MIGRATIONS_DIR, provider.get_tracer(settings.service_name)
    )
    servicer = build_servicer(settings, storage)
    await serve_until_stopped(settings, storage, registrar(servicer), provider)
