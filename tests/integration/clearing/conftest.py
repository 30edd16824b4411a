"""A clearing service on SQLite or PostgreSQL, shared by the clearing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from medsettle.clearing.v1 import clearing_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.clearing.config import ClearingSettings
from services.clearing.models import Base
from services.clearing.server import MIGRATIONS_DIR, build_servicer, registrar
from services.common.runtime import Storage, open_storage
from tests.harness import serving

if TYPE_CHECKING:
    Stub = clearing_service_pb2_grpc.ClearingServiceAsyncStub


@pytest.fixture
async def clearing(
    database_url: str, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[tuple[Stub, Storage]]:
    settings = ClearingSettings(database_url=database_url, data_dir=tmp_path)
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    async with serving(
        settings, storage, registrar(build_servicer(storage)), tracer_provider
    ) as ch:
        yield clearing_service_pb2_grpc.ClearingServiceStub(ch), storage
