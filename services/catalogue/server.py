"""Assembles the catalogue service: storage, servicers, gRPC server."""

from __future__ import annotations

from pathlib import Path

from medsettle.catalogue.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.catalogue.cache import CatalogueReads
from services.catalogue.config import CatalogueSettings
from services.catalogue.models import Base
from services.catalogue.servicer import CatalogueServicer
from services.common.runtime import Storage, open_storage, serve_until_stopped
from services.common.server import Registrar
from services.common.server import registrar as common_registrar

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = catalogue_service_pb2.DESCRIPTOR.services_by_name["CatalogueService"].full_name


def registrar(servicer: CatalogueServicer) -> Registrar:
    """Adds the catalogue servicer to a server (health and reflection come from services.common)."""
    return common_registrar(
        catalogue_service_pb2_grpc.add_CatalogueServiceServicer_to_server, servicer, SERVICE_NAME
    )


def build_servicer(settings: CatalogueSettings, storage: Storage) -> CatalogueServicer:
    """The servicer with its dependencies."""
    reads = CatalogueReads(storage.sessions, storage.cache, enabled=settings.cache_enabled)
    return CatalogueServicer(storage.sessions, reads)


async def serve(settings: CatalogueSettings, provider: TracerProvider) -> None:
    """Run the catalogue service until SIGTERM/SIGINT."""
    storage = await open_storage(
        settings, Base.metadata, MIGRATIONS_DIR, provider.get_tracer(settings.service_name)
    )
    servicer = build_servicer(settings, storage)
    await serve_until_stopped(settings, storage, registrar(servicer), provider)
