"""Fixtures shared by every test tier: real PostgreSQL and Redis, SQLite, in-memory spans, a mesh.

PostgreSQL (`MEDSETTLE_TEST_POSTGRES`, default postgresql://postgres@127.0.0.1:5432) and Redis
(`MEDSETTLE_TEST_REDIS`, default redis://127.0.0.1:6379/0) must be running: storage tests use
them for real. Each test gets its own database (created and dropped) and its own Redis key prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.tracing import make_tracer_provider

POSTGRES_SERVER = os.environ.get("MEDSETTLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("MEDSETTLE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for this test (SQLAlchemy asyncpg URL)."""
    name = f"medsettle_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{POSTGRES_SERVER.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test (the embedded default)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def redis_client() -> AsyncIterator[redis_asyncio.Redis]:
    """A client for the real Redis; the test's keys go under `redis_prefix`."""
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    await client.ping()
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: redis_asyncio.Redis) -> AsyncIterator[str]:
    """A key prefix owned by this test; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """Collects finished spans in memory."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider exporting synchronously to span_exporter (not installed globally)."""
    provider = make_tracer_provider("test", span_exporter)
    yield provider
    provider.shutdown()
