"""The outbox relay: delivers ledger events to clearing, at least once, in commit order.

A settlement and its ledger event commit together (servicer.py); this relay then sends the events
due, up to a batch at a time, to clearing's RecordLedgerEvents, which records them in one
transaction and ignores an event id it has seen, so "at least once" here is "exactly once" in the
ledger. Events are claimed with a lease before sending, so another replica (or this one after a
crash) resends only events whose lease ran out. When clearing fails, the failed event and those
after it wait together; retries back off exponentially with jitter up to a ceiling, and the
counter keeps settling meanwhile.
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
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from prometheus_client import Gauge
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import caller_metadata
from services.settlement.models import OutboxRow
from services.settlement.repository import SettlementRepository

log = logging.getLogger(__name__)
TracedEvent = tuple[ledger_pb2.LedgerEvent, str]
"""A ledger event and the traceparent of its delivery span ("" when untraced)."""
Deliver = Callable[[list[TracedEvent]], Awaitable[None]]
# Codes that say clearing could not be reached or answer, rather than that an event is at fault.
_PEER_DOWN = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


def clearing_delivery(channel: grpc.aio.Channel, timeout_s: float = 2.0) -> Deliver:
    """Send events to clearing's RecordLedgerEvents, all in one call and one transaction."""
    stub = clearing_service_pb2_grpc.ClearingServiceStub(channel)
    metadata = caller_metadata("national")

    async def deliver(events: list[TracedEvent]) -> None:
        request = clearing_service_pb2.RecordLedgerEventsRequest(
            events=[
                clearing_service_pb2.TracedLedgerEvent(event=event, traceparent=traceparent)
                for event, traceparent in events
            ]
        )
        await stub.RecordLedgerEvents(request, timeout=timeout_s, metadata=metadata)

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
        linger_s: float,
        batch: int = 100,
        lease_s: float = 30.0,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        idle_poll_s: float = 5.0,
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
            repository = SettlementRepository(session)
            rows = await repository.due_events(now, self._batch)
            claimed = [(row.id, row.attempts, row.event, row.traceparent) for row in rows]
            await repository.lease_events([row.id for row in rows], now + self._lease)
        delivered, failed = await self._send(claimed)
        await self._record(delivered, failed, [c[0] for c in claimed])
        self.delivered += len(delivered)
        if self._backlog is not None and time.monotonic() - self._backlog_read_at >= 1.0:
            self._backlog_read_at = time.monotonic()  # a gauge, scraped every few seconds
            async with self._sessions() as session:
                waiting, _ = await SettlementRepository(session).backlog()
            self._backlog.set(waiting)
        return len(delivered)

    async def _send(self, claimed: list[_Claimed]) -> tuple[list[int], _Failure | None]:
        """Deliver the claimed events in one call; the ids delivered and the failure, if any.

        When clearing refuses the call for one of its events, they are sent again one at a time,
        so that those before it are delivered and the failure is pinned on the right event.
        """
        if not claimed:
            return [], None
        try:
            await self._deliver_traced(claimed)
            return [row_id for row_id, *_ in claimed], None
        except grpc.aio.AioRpcError as error:
            if len(claimed) == 1 or error.code() in _PEER_DOWN:
                return [], _failure(claimed[0], error)
        delivered: list[int] = []
        for item in claimed:
            try:
                await self._deliver_traced([item])
            except grpc.aio.AioRpcError as error:
                return delivered, _failure(item, error)
            delivered.append(item[0])
        return delivered, None

    async def _deliver_traced(self, items: list[_Claimed]) -> None:
        """One call for these events. Each event's delivery is a span in the trace of the
        settlement that queued it; the call itself is traced under a relay span linked to them
        (one call carries events of many traces)."""
        spans = [
            self._tracer.start_span(
                "outbox/deliver",
                context=propagate.extract({"traceparent": traceparent}) if traceparent else None,
                kind=SpanKind.PRODUCER,
            )
            for *_, traceparent in items
        ]
        try:
            events = []
            for (_, _, payload, _), span in zip(items, spans, strict=True):
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=trace.set_span_in_context(span))
                events.append(
                    (ledger_pb2.LedgerEvent.FromString(payload), carrier.get("traceparent", ""))
                )
            links = [Link(s.get_span_context()) for s in spans if s.get_span_context().is_valid]
            with self._tracer.start_as_current_span("outbox/relay", links=links):
                await self._deliver(events)
        except grpc.aio.AioRpcError as error:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, error.code().name))
            raise
        finally:
            for span in spans:
                span.end()

    async def _record(
        self, delivered: list[int], failed: _Failure | None, claimed: list[int]
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


_Claimed = tuple[int, int, bytes, str]
"""A claimed outbox row: id, attempts so far, the event's bytes, its traceparent ("" if none)."""
_Failure = tuple[int, int, str]
"""The outbox row that failed, its attempts with this one, and why."""


def _failure(item: _Claimed, error: grpc.aio.AioRpcError) -> _Failure:
    row_id, attempts, _, _ = item
    return row_id, attempts + 1, f"{error.code().name}: {error.details()}"[:500]
