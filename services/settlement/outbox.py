"""The outbox relay: delivers ledger events to clearing, at least once, in commit order.

A settlement and its ledger event commit together (servicer.py); this relay then sends each event
to clearing's RecordLedgerEvent, which ignores an event id it has seen, so "at least once" here
is "exactly once" in the ledger. Events are claimed with a lease before sending, so another
replica (or this one after a crash) resends only events whose lease ran out. When clearing
fails, the rest of the batch waits with the failed event; retries back off exponentially with
jitter up to a ceiling, and the counter keeps settling meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Awaitable, Callable

import grpc
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, ledger_pb2
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Gauge
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import caller_metadata
from services.settlement.models import OutboxRow
from services.settlement.repository import SettlementRepository

log = logging.getLogger(__name__)
Deliver = Callable[[ledger_pb2.LedgerEvent], Awaitable[None]]


def clearing_delivery(channel: grpc.aio.Channel, timeout_s: float = 2.0) -> Deliver:
    """Send one event to clearing's RecordLedgerEvent (the event id is the request id)."""
    stub = clearing_service_pb2_grpc.ClearingServiceStub(channel)
    metadata = caller_metadata("national")

    async def deliver(event: ledger_pb2.LedgerEvent) -> None:
        request = clearing_service_pb2.RecordLedgerEventRequest(
            request_id=event.event_id, event=event
        )
        await stub.RecordLedgerEvent(request, timeout=timeout_s, metadata=metadata)

    return deliver


def backoff_s(attempts: int, base_s: float, ceiling_s: float) -> float:
    """Full-jitter exponential backoff after `attempts` failures."""
    return random.uniform(0, min(ceiling_s, base_s * 2 ** max(0, attempts - 1)))


class OutboxRelay:
    """Runs until cancelled; `wake()` after a commit starts delivery within `linger_s`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deliver: Deliver,
        *,
        batch: int = 100,
        lease_s: float = 30.0,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        idle_poll_s: float = 5.0,
        linger_s: float = 0.1,
        backlog: Gauge | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._sessions = sessions
        self._deliver = deliver
        self._batch = batch
        self._lease = dt.timedelta(seconds=lease_s)
        self._base_backoff_s = base_backoff_s
        self._max_backoff_s = max_backoff_s
        self._idle_poll_s = idle_poll_s
        self._linger_s = linger_s
        self._backlog_read_at = 0.0
        self._wake = asyncio.Event()
        self._backlog = backlog
        self._tracer = tracer or trace.NoOpTracer()
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        """Something was committed to the outbox."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; never dies on a delivery or database error."""
        while True:
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                sent = 0
            if sent < self._batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
                self._wake.clear()
                # A pass per commit costs two transactions per event; waiting a moment lets the
                # commits that follow join the same pass.
                await asyncio.sleep(self._linger_s)

    async def relay_once(self) -> int:
        """Claim the due events, send them in order, record the outcome; events delivered."""
        now = dt.datetime.now(dt.UTC)
        async with self._sessions.begin() as session:
            rows = await SettlementRepository(session).due_events(now, self._batch)
            for row in rows:
                row.next_attempt_at = now + self._lease
            claimed = [(row.id, row.attempts, row.event, row.traceparent) for row in rows]
        delivered: list[int] = []
        failed: tuple[int, int, str] | None = None
        for row_id, attempts, payload, traceparent in claimed:
            # The delivery continues the trace of the settlement that queued the event.
            parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
            with self._tracer.start_as_current_span(
                "outbox/deliver", context=parent, kind=SpanKind.PRODUCER
            ):
                try:
                    await self._deliver(ledger_pb2.LedgerEvent.FromString(payload))
                except grpc.aio.AioRpcError as error:
                    failed = (
                        row_id,
                        attempts + 1,
                        f"{error.code().name}: {error.details()}"[:500],
                    )
                    break
            delivered.append(row_id)
        await self._record(delivered, failed, [c[0] for c in claimed])
        self.delivered += len(delivered)
        if self._backlog is not None and time.monotonic() - self._backlog_read_at >= 1.0:
            self._backlog_read_at = time.monotonic()  # a gauge, scraped every few seconds
            async with self._sessions() as session:
                waiting, _ = await SettlementRepository(session).backlog()
            self._backlog.set(waiting)
        return len(delivered)

    async def _record(
        self, delivered: list[int], failed: tuple[int, int, str] | None, claimed: list[int]
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        async with self._sessions.begin() as session:
            if delivered:
                await session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(delivered)).values(delivered_at=now)
                )
            if failed is None:
                return
            row_id, attempts, error = failed
            self.failures += 1
            retry_at = now + dt.timedelta(
                seconds=backoff_s(attempts, self._base_backoff_s, self._max_backoff_s)
            )
            log.warning("ledger event delivery failed (attempt %d): %s", attempts, error)
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(attempts=attempts, last_error=error)
            )
            # The failed event and those after it (not tried) wait together, in order.
            waiting = [claimed_id for claimed_id in claimed if claimed_id not in delivered]
            await session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(waiting)).values(next_attempt_at=retry_at)
            )
