"""Assembles the settlement service: storage, upstream channels, servicer, outbox relay, server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)
from opentelemetry.sdk.trace import TracerProvider

from services.common.channels import make_channel
from services.common.runtime import Storage, open_storage, serve_until_stopped, stop_tasks
from services.common.server import Registrar
from services.common.server import registrar as common_registrar
from services.settlement.config import SettlementSettings
from services.settlement.filing_ends import FilingEnds
from services.settlement.metrics import SettlementMetrics
from services.settlement.models import Base
from services.settlement.outbox import OutboxRelay, clearing_delivery
from services.settlement.servicer import SettlementServicer
from services.settlement.upstreams import Upstreams

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SERVICE_NAME = settlement_service_pb2.DESCRIPTOR.services_by_name["SettlementService"].full_name


def registrar(servicer: SettlementServicer) -> Registrar:
    """Adds the settlement servicer (health and reflection come from services.common)."""
    return common_registrar(
        settlement_service_pb2_grpc.add_SettlementServiceServicer_to_server, servicer, SERVICE_NAME
    )


def build_servicer(
    storage: Storage,
    upstreams: Upstreams,
    relay: OutboxRelay | None,
    figures: SettlementMetrics | None = None,
    filing_ends: FilingEnds | None = None,
) -> SettlementServicer:
    """The servicer with its dependencies; a commit is counted and wakes the relay (if any);
    without `filing_ends`, every settlement asks filing for its filing."""
    figures = figures or SettlementMetrics(storage.metrics)

    def committed(settlement: settlement_pb2.Settlement) -> None:
        figures.record(settlement)
        if relay is not None:
            relay.wake()

    return SettlementServicer(
        storage.sessions, upstreams, committed, storage.autocommit, filing_ends, storage.driver
    )


async def serve(settings: SettlementSettings, provider: TracerProvider) -> None:
    """Run the settlement service and its outbox relay until SIGTERM/SIGINT."""
    storage = await open_storage(
        settings,
        Base.metadata,
        MIGRATIONS_DIR,
        provider.get_tracer(settings.service_name),
        driver_pool_size=settings.lookup_pool_size,
    )
    tracer = provider.get_tracer(settings.service_name)
    upstreams = Upstreams.connect(settings.upstream_targets(), tracer, settings.default_timeout_s)
    clearing = make_channel(
        settings.clearing_target, tracer=tracer, default_timeout_s=settings.default_timeout_s
    )
    figures = SettlementMetrics(storage.metrics)
    relay = None
    if settings.relay_enabled:
        relay = OutboxRelay(
            storage.sessions,
            clearing_delivery(clearing),
            max_backoff_s=settings.relay_max_backoff_s,
            linger_s=settings.relay_linger_s,
            backlog=figures.outbox_backlog,
            tracer=tracer,
        )
    # The stream's own channel: one watch call lasts filing_watch_s, not a request's deadline.
    watch_channel = make_channel(
        settings.filing_target, tracer=tracer, default_timeout_s=settings.filing_watch_s
    )
    filing_ends = None
    if settings.filing_ends_enabled:
        filing_ends = FilingEnds(
            storage.sessions, watch_channel, current_s=settings.filing_ends_current_s
        )
    metrics = storage.metrics
    metrics.watch(
        "medsettle_filing_ends_current",
        "1 while filing's change stream is current (settlements then skip the filing call)",
        lambda: float(bool(filing_ends and filing_ends.current)),
    )
    tasks = [asyncio.create_task(worker.run()) for worker in (relay, filing_ends) if worker]
    try:
        servicer = build_servicer(storage, upstreams, relay, figures, filing_ends)
        await serve_until_stopped(settings, storage, registrar(servicer), provider, tasks)
    finally:
        await stop_tasks(tasks)  # already stopped, unless the server failed to start
        await upstreams.close()
        await clearing.close()
        await watch_channel.close()
