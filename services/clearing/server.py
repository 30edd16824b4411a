"""Assembles the clearing service: storage, servicer, gRPC server."""

from __future__ import annotations

from pathlib import Path

from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from services.clearing.config import ClearingSettings
from services.clearing.models import Base
from services.clearing.servicer import ClearingServicer
from services.common.runtime import Storage, open_storage, serve_until_stopped
from services.common.server import Registrar
from services.common.server import registrar as common_registrar

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = clearing_service_pb2.DESCRIPTOR.services_by_name["ClearingService"].full_name


def registrar(servicer: ClearingServicer) -> Registrar:
    """Adds the clearing servicer (health and reflection come from services.common)."""
    return common_registrar(
        clearing_service_pb2_grpc.add_ClearingServiceServicer_to_server, servicer, SERVICE_NAME
    )


def build_servicer(storage: Storage, tracer: Tracer | None = None) -> ClearingServicer:
    """The servicer with its dependencies (the tracer opens a span per batched ledger event)."""
    return ClearingServicer(storage.sessions, storage.metrics, tracer)


async def serve(settings: ClearingSettings, provider: TracerProvider) -> None:
    """Run the clearing service until SIGTERM/SIGINT."""
    tracer = provider.get_tracer(settings.service_name)
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR, tracer)
    await serve_until_stopped(
        settings, storage, registrar(build_servicer(storage, tracer)), provider
    )
