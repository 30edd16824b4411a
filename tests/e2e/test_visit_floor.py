"""`medsettle floor`: whole visits through the I/O skeleton, on the real PostgreSQL and Redis."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from services.visit_floor import run_floor
from tests.conftest import POSTGRES_SERVER, REDIS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


async def test_the_skeleton_completes_visits_and_counts_every_process_then_drops_its_data() -> None:
    database = f"medsettle_test_floor_{uuid.uuid4().hex[:12]}"
    run = await run_floor(
        POSTGRES_SERVER, REDIS_URL, concurrency=2, duration_s=1.5, lines=10, database=database
    )
    assert run.visits > 0
    assert set(run.cpu_ms_per_visit) == {
        "identity",
        "catalogue",
        "settlement",
        "gateway",
        "postgres",
        "load generator",
    }
    # Every process did work for each visit: a process that answered nothing would spend ~0.
    assert all(ms > 0 for ms in run.cpu_ms_per_visit.values())
    report = run.report()
    assert report.startswith(f"visit floor (no software): {run.visits} visits in ")
    assert "CPU per visit (ms): identity " in report
    admin = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
    try:
        assert not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    finally:
        await admin.close()
    cache = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        assert [key async for key in cache.scan_iter(f"{database}:*")] == []
    finally:
        await cache.aclose()


async def test_layers_of_the_mesh_software_can_be_added_and_an_unknown_one_is_refused() -> None:
    database = f"medsettle_test_floor_{uuid.uuid4().hex[:12]}"
    run = await run_floor(
        POSTGRES_SERVER,
        REDIS_URL,
        concurrency=2,
        duration_s=1.0,
        lines=10,
        layers=frozenset({"sqlalchemy", "telemetry"}),
        database=database,
    )
    assert run.visits > 0
    assert run.report().startswith("visit floor (sqlalchemy + telemetry): ")
    with pytest.raises(ValueError, match="unknown layers \\['protobuf'\\]"):
        await run_floor(
            POSTGRES_SERVER,
            REDIS_URL,
            concurrency=1,
            duration_s=0.1,
            layers=frozenset({"protobuf"}),
        )
