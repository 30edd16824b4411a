"""Assembles the clearing service: storage, servicers, gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.clearing.config import ClearingSettings
from services.clearing.models import Base
from services.common.runtime import open_storage, serve_until_stopped

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def register(server: grpc.aio.Server) -> Sequence[str]:
    """Add the clearing servicers to server (health and reflection come from services.common)."""
    return []


async def serve(settings: ClearingSettings, provider: TracerProvider) -> None:
    """Run the clearing service until SIGTERM/SIGINT."""
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    await serve_until_stopped(settings, storage, register, provider)
