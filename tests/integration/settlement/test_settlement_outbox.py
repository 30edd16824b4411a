"""The outbox: ledger events commit with settlements and reach clearing once, also after an outage.

Clearing is a test double here (it records what it receives and can refuse as if down); the e2e
tests run the relay against the real clearing service.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, ledger_pb2
from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import event, select

from services.common.channels import make_channel
from services.common.runtime import Storage, open_storage
from services.common.server import registrar, start_server
from services.settlement.bundle import load_policies, read_policies
from services.settlement.config import SettlementSettings
from services.settlement.models import Base, OutboxRow
from services.settlement.outbox import OutboxRelay, clearing_delivery
from services.settlement.repository import SettlementRepository
from services.settlement.server import MIGRATIONS_DIR, build_servicer
from services.settlement.server import registrar as settlement_registrar
from services.settlement.upstreams import Upstreams
from tests.harness import serving
from tests.integration.settlement.conftest import RETIREE, Upstream
from tests.integration.settlement.test_settlement_service import (
    GATEWAY,
    admit,
    cancel_request,
    fee,
    settle_request,
    upload,
)

if TYPE_CHECKING:
    from tests.integration.settlement.conftest import SettlementStub

LINGER_S = 1.0
"""The test relay's linger: long enough for three settlements on a slow machine."""
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class FakeClearing(clearing_service_pb2_grpc.ClearingServiceServicer):
    """Records ledger events by id; while `down`, answers UNAVAILABLE like a dead peer; refuses
    a call holding an event id in `poison`, recording none of it, as clearing would."""

    down: bool = False
    poison: set[str] = field(default_factory=set)
    events: dict[str, ledger_pb2.LedgerEvent] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    calls: list[int] = field(default_factory=list)
    refused: int = 0

    async def RecordLedgerEvents(
        self, request: clearing_service_pb2.RecordLedgerEventsRequest, context: Any
    ) -> clearing_service_pb2.RecordLedgerEventsResponse:
        if self.down:
            self.refused += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "clearing is down")
        if any(traced.event.event_id in self.poison for traced in request.events):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a poisoned event")
        self.calls.append(len(request.events))
        recorded = []
        for traced in request.events:
            event_id = traced.event.event_id
            self.accepted[event_id] += 1
            recorded.append(event_id not in self.events)
            self.events.setdefault(event_id, traced.event)
        return clearing_service_pb2.RecordLedgerEventsResponse(recorded=recorded)


@dataclass
class RelayedService:
    """A settlement service whose relay delivers to a FakeClearing."""

    stub: SettlementStub
    relay: OutboxRelay
    clearing: FakeClearing
    backlog: Any
    storage: Storage


@pytest_asyncio.fixture(loop_scope="module")
async def with_relay(
    upstream: Upstream, settlement_settings: SettlementSettings, tracer_provider: TracerProvider
) -> AsyncIterator[RelayedService]:
    # Only the ledger RPC is doubled; the generated base answers UNIMPLEMENTED for the rest.
    clearing = FakeClearing()  # type: ignore[abstract]
    running = await start_server(
        registrar(
            clearing_service_pb2_grpc.add_ClearingServiceServicer_to_server,
            clearing,
            "medsettle.clearing.v1.ClearingService",
        ),
        host="127.0.0.1",
        port=0,
        tracer=tracer_provider.get_tracer("clearing"),
        error_domain="clearing.medsettle",
        max_concurrent_rpcs=16,
    )
    channel = make_channel(
        f"127.0.0.1:{running.port}", tracer=tracer_provider.get_tracer("relay"), default_timeout_s=2
    )
    storage = await open_storage(settlement_settings, Base.metadata, MIGRATIONS_DIR)
    # A long linger, so that settlements made one after another share a delivery (as the
    # deployed 0.5 s does under load) even on a slow machine.
    relay = OutboxRelay(
        storage.sessions,
        clearing_delivery(channel),
        linger_s=LINGER_S,
        base_backoff_s=0.05,
        max_backoff_s=0.2,
        idle_poll_s=0.2,
    )
    upstreams = Upstreams.connect(upstream.targets, tracer_provider.get_tracer("settlement"), 10)
    servicer = build_servicer(storage, upstreams, relay)

    async def backlog() -> int:
        async with storage.sessions() as session:
            count, _ = await SettlementRepository(session).backlog()
        return count

    task = asyncio.create_task(relay.run())
    register = settlement_registrar(servicer)
    async with serving(settlement_settings, storage, register, tracer_provider) as ch:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(ch)
        await load_policies(stub, read_policies(upstream.policies_path))
        yield RelayedService(stub, relay, clearing, backlog, storage)
        task.cancel()
    await upstreams.close()
    await channel.close()
    await running.stop(0)


async def _drained(service: RelayedService, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await service.backlog() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox still holds {await service.backlog()} events")


async def _settle_three(
    stub: SettlementStub, upstream: Upstream, first_fee_fen: int, prefix: str
) -> list[settlement_pb2.Settlement]:
    """Three outpatient settlements with fees first_fee_fen, +1, +2."""
    settled = []
    for index in range(3):
        visit = await admit(stub, upstream, RETIREE, med_type="11")
        await upload(stub, visit, fee("1", "XD0000", first_fee_fen + index))
        request = settle_request(visit, f"{prefix}-{visit.mdtrt_id}")
        settled.append(await stub.SettleVisit(request, metadata=GATEWAY))
    return settled


async def test_settlements_committed_within_the_linger_reach_clearing_in_one_call(
    with_relay: RelayedService, upstream: Upstream
) -> None:
    stub, clearing = with_relay.stub, with_relay.clearing
    visits = []
    for index in range(3):
        visit = await admit(stub, upstream, RETIREE, med_type="11")
        await upload(stub, visit, fee("1", "XD0000", 30_000 + index))
        visits.append(visit)
    await _drained(with_relay)
    calls_before = len(clearing.calls)
    leases: list[int] = []  # rows each statement that leases events updates (its parameter sets)

    def count_leases(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.startswith("UPDATE outbox SET next_attempt_at"):
            leases.append(len(params) if many else 1)

    sync_engine = with_relay.storage.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count_leases)
    started = time.monotonic()
    settled = await asyncio.gather(
        *(
            stub.SettleVisit(settle_request(visit, f"l-{visit.mdtrt_id}"), metadata=GATEWAY)
            for visit in visits
        )
    )
    assert time.monotonic() - started < LINGER_S, "the settlements took longer than the linger"
    await _drained(with_relay)
    event.remove(sync_engine, "before_cursor_execute", count_leases)
    # The first commit woke the relay; it waited, and the other two went with it...
    assert clearing.calls[calls_before:] == [3]
    assert {f"{s.setl_id}S" for s in settled} <= set(clearing.events)
    # ...leased in one statement with one set of parameters, not one per event.
    assert leases == [1]


async def test_events_wait_while_clearing_is_down_then_arrive_exactly_once(
    with_relay: RelayedService, upstream: Upstream
) -> None:
    stub, clearing = with_relay.stub, with_relay.clearing
    clearing.down = True
    settled = await _settle_three(stub, upstream, 10_000, "o")
    for _ in range(200):
        if clearing.refused:
            break
        await asyncio.sleep(0.05)
    assert clearing.refused >= 1 and clearing.events == {}
    assert await with_relay.backlog() == 3  # the counter kept settling; nothing is lost

    clearing.down = False
    await _drained(with_relay)
    assert sorted(clearing.events) == sorted(f"{s.setl_id}S" for s in settled)
    assert set(clearing.accepted.values()) == {1}
    assert clearing.calls == [3]  # the three waited together and went in one call
    event = clearing.events[f"{settled[0].setl_id}S"]
    assert event.kind == ledger_pb2.LEDGER_EVENT_KIND_SETTLED
    assert event.medfee_sumamt.amount_fen == 10_000
    assert event.fund_pay_sumamt.amount_fen == settled[0].fund_pay_sumamt.amount_fen

    await stub.CancelSettlement(
        cancel_request(settled[0], f"oc-{settled[0].setl_id}"), metadata=GATEWAY
    )
    await _drained(with_relay)
    reversal = clearing.events[f"{settled[0].setl_id}C"]
    assert reversal.kind == ledger_pb2.LEDGER_EVENT_KIND_CANCELLED
    assert reversal.medfee_sumamt.amount_fen + event.medfee_sumamt.amount_fen == 0
    assert reversal.hifp_pay.amount_fen + event.hifp_pay.amount_fen == 0
    assert set(clearing.accepted.values()) == {1}


async def test_an_event_clearing_refuses_holds_back_only_itself_and_those_after_it(
    with_relay: RelayedService, upstream: Upstream
) -> None:
    stub, clearing = with_relay.stub, with_relay.clearing
    clearing.down = True
    settled = await _settle_three(stub, upstream, 20_000, "p")
    first, poisoned, last = (f"{s.setl_id}S" for s in settled)
    clearing.poison = {poisoned}
    clearing.down = False
    for _ in range(200):
        if first in clearing.events:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # more passes: the refused event keeps the one after it waiting
    assert first in clearing.events and poisoned not in clearing.events
    assert last not in clearing.events
    assert await with_relay.backlog() == 2
    async with with_relay.storage.sessions() as session:
        errors = await session.scalars(
            select(OutboxRow.last_error).where(OutboxRow.delivered_at.is_(None))
        )
        assert {e.split(":")[0] if e else "" for e in errors} == {"INVALID_ARGUMENT", ""}

    clearing.poison.clear()
    await _drained(with_relay)
    assert {first, poisoned, last} <= set(clearing.events)
    assert all(clearing.accepted[e] == 1 for e in (first, poisoned, last))
