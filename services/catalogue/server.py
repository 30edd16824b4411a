"""Assembles the catalogue service: storage, servicers, gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.catalogue.config import CatalogueSettings
from services.catalogue.models import Base
from services.common.runtime import open_storage, serve_until_stopped

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def register(server: grpc.aio.Server) -> Sequence[str]:
    """Add the catalogue servicers to server (health and reflection come from services.common)."""
    return []


async def serve(settings: CatalogueSettings, provider: TracerProvider) -> None:
    """Run the catalogue service until SIGTERM/SIGINT."""
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    await serve_until_stopped(settings, storage, register, provider)
