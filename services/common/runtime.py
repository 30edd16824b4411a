"""What a service process holds for its lifetime: database engine, sessions, cache, tracer.

Built once by the service's `serve()` from its settings and passed to the servicers; closed on
shutdown. Nothing here is module-level state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.cache import Cache, make_redis
from services.common.config import ProcessSettings, ServiceSettings
from services.common.db import make_autocommit_session_factory, make_engine, make_session_factory
from services.common.driver import DriverPool
from services.common.log import configure_logging
from services.common.metrics import ProcessMetrics
from services.common.migrations import upgrade_to_head
from services.common.server import Registrar, start_server, wait_for_stop_signal
from services.common.supervision import exit_with_parent
from services.common.tracing import install_tracer_provider, make_tracer_provider, trace_database

S = TypeVar("S", bound=ServiceSettings)


@dataclass
class Storage:
    """A process's database and cache, and the metrics registry the cache reports into."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    autocommit: async_sessionmaker[AsyncSession]
    """For reads and one-statement writes: no transaction on PostgreSQL (services.common.db)."""
    cache: Cache
    metrics: ProcessMetrics
    driver: DriverPool | None = None
    """asyncpg connections for the hot statements on PostgreSQL (services.common.driver); None
    on SQLite and where the process asked for none."""

    async def close(self) -> None:
        """Release pooled connections."""
        if self.driver is not None:
            await self.driver.close()
        await self.engine.dispose()
        redis_client = self.cache.redis_client
        if redis_client is not None:
            await redis_client.aclose()


async def open_storage(
    settings: ProcessSettings,
    metadata: MetaData,
    migrations_dir: Path,
    tracer: Tracer | None = None,
    *,
    driver_pool_size: int = 0,
) -> Storage:
    """Connect, migrate to head, and build the cache (Redis when configured); with a tracer,
    every statement and Redis round trip gets its span. With `driver_pool_size`, a PostgreSQL
    database also gets that many asyncpg connections for hot statements."""
    engine = make_engine(settings.sqlalchemy_url())
    await upgrade_to_head(engine, migrations_dir, metadata)
    if tracer is not None:
        trace_database(engine, tracer)
    cache = Cache(
        make_redis(settings.redis_url),
        prefix=f"{settings.redis_prefix}:{settings.service_name}",
        tracer=tracer,
    )
    metrics = ProcessMetrics(settings.service_name)
    metrics.watch(
        "medsettle_cache_hit_ratio",
        "Cache hits over lookups since start",
        lambda: cache.stats.hit_ratio,
    )
    driver = (
        await DriverPool.open(settings.sqlalchemy_url(), driver_pool_size, tracer)
        if driver_pool_size
        else None
    )
    return Storage(
        engine,
        make_session_factory(engine),
        make_autocommit_session_factory(engine),
        cache,
        metrics,
        driver,
    )


def run_service(
    settings: S, serve: Callable[[S, TracerProvider], Coroutine[Any, Any, None]]
) -> None:
    """Process entry point shared by every `python -m services.<name>`."""
    if settings.exit_with_parent:
        exit_with_parent()
    configure_logging(settings.service_name, settings.log_level, json_lines=settings.log_json)
    provider = make_tracer_provider(settings.service_name)
    install_tracer_provider(provider)
    try:
        uvloop.run(serve(settings, provider))
    except asyncio.CancelledError:
        pass
    finally:
        provider.shutdown()


async def serve_until_stopped(
    settings: ServiceSettings,
    storage: Storage,
    register: Registrar,
    provider: TracerProvider,
    background: Sequence[asyncio.Task[None]] = (),
) -> None:
    """Start the gRPC server, wait for SIGTERM/SIGINT, stop gracefully, close storage.

    `background` tasks (loops that call other services or use storage) are stopped first, at
    the signal: the services they call may be stopping too, and the storage closes last."""
    running = await start_server(
        register,
        host=settings.grpc_host,
        port=settings.grpc_port,
        tracer=provider.get_tracer(settings.service_name),
        error_domain=f"{settings.service_name}.medsettle",
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        metrics=storage.metrics,
    )
    if settings.metrics_port:
        storage.metrics.serve(settings.grpc_host, settings.metrics_port)
    freeze_startup_objects()
    try:
        await wait_for_stop_signal()
    finally:
        await stop_tasks(background)
        await running.stop(settings.shutdown_grace_s)
        await storage.close()


def freeze_startup_objects() -> None:
    """Exempt what starting up allocated (modules, table metadata, compiled statements, demo
    data) from garbage collection: the collector's full passes then walk only what serving
    allocates. Cycles left by starting up are collected first."""
    gc.collect()
    gc.freeze()


async def stop_tasks(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel the tasks and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
