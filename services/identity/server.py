"""Assembles the identity service: storage, servicers, gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.runtime import open_storage, serve_until_stopped
from services.identity.config import IdentitySettings
from services.identity.models import Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def register(server: grpc.aio.Server) -> Sequence[str]:
    """Add the identity servicers to server (health and reflection come from services.common)."""
    return []


async def serve(settings: IdentitySettings, provider: TracerProvider) -> None:
    """Run the identity service until SIGTERM/SIGINT."""
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    await serve_until_stopped(settings, storage, register, provider)
