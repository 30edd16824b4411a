"""Assembles the settlement service: storage, servicers, gRPC server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.runtime import open_storage, serve_until_stopped
from services.settlement.config import SettlementSettings
from services.settlement.models import Base

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def register(server: grpc.aio.Server) -> Sequence[str]:
    """Add the settlement servicers to server (health and reflection come from services.common)."""
    return []


async def serve(settings: SettlementSettings, provider: TracerProvider) -> None:
    """Run the settlement service until SIGTERM/SIGINT."""
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    await serve_until_stopped(settings, storage, register, provider)
