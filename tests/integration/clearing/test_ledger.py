"""ClearingService.RecordLedgerEvent(s) on SQLite and PostgreSQL: idempotent by event id."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, ledger_pb2
from sqlalchemy import func, select, text

from services.clearing.models import LedgerEntryRow
from services.common.errors import error_info
from services.common.runtime import Storage
from services.common.values import money, timestamp
from tests.harness import national, province, refusal

if TYPE_CHECKING:
    Stub = clearing_service_pb2_grpc.ClearingServiceAsyncStub

_Batch = clearing_service_pb2.RecordLedgerEventsRequest


def event(
    event_id: str = "S1S", fund: int = 4_889
) -> clearing_service_pb2.RecordLedgerEventRequest:
    # 2026-11-30 17:00 UTC is already December 1st in Asia/Shanghai.
    when = dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)
    return clearing_service_pb2.RecordLedgerEventRequest(
        request_id=event_id,
        event=ledger_pb2.LedgerEvent(
            event_id=event_id,
            kind=ledger_pb2.LEDGER_EVENT_KIND_SETTLED,
            setl_id="S1",
            mdtrt_id="M1",
            fixmedins_code="H11010000001",
            treatment_admdvs="110100",
            insuplc_admdvs="131000",
            insutype="310",
            med_type="14",
            event_time=timestamp(when),
            medfee_sumamt=money(6_429),
            hifp_pay=money(fund),
            fund_pay_sumamt=money(fund),
            psn_cash_pay=money(6_429 - fund),
            psn_no="P1",
        ),
    )


async def test_an_event_is_recorded_once_and_a_redelivery_changes_nothing(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    assert (await stub.RecordLedgerEvent(event(), metadata=national())).recorded
    assert not (await stub.RecordLedgerEvent(event(), metadata=national())).recorded
    async with storage.sessions() as session:
        rows = (await session.scalars(select(LedgerEntryRow))).all()
        assert await session.scalar(select(func.count()).select_from(LedgerEntryRow)) == 1
    (row,) = rows
    assert (row.period, row.insured_prov, row.treatment_prov) == ("2026-12", "130000", "110000")
    assert (row.medfee_sumamt_fen, row.hifp_pay_fen, row.psn_cash_pay_fen) == (6_429, 4_889, 1_540)


async def test_the_same_event_id_with_other_amounts_is_refused(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    await stub.RecordLedgerEvent(event(), metadata=national())
    assert await refusal(stub.RecordLedgerEvent(event(fund=4_890), metadata=national())) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "LEDGER_EVENT_CONFLICT",
    )


async def test_events_that_do_not_add_up_or_come_from_a_province_are_refused(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    broken = event()
    broken.event.fund_pay_sumamt.amount_fen += 1
    assert await refusal(stub.RecordLedgerEvent(broken, metadata=national())) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "LEDGER_EVENT_INVALID",
    )
    assert await refusal(stub.RecordLedgerEvent(event(), metadata=province("110000"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )


def batch(*requests: clearing_service_pb2.RecordLedgerEventRequest) -> _Batch:
    return clearing_service_pb2.RecordLedgerEventsRequest(
        events=[clearing_service_pb2.TracedLedgerEvent(event=r.event) for r in requests]
    )


async def test_a_batch_records_each_new_event_once_in_one_call(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    await stub.RecordLedgerEvent(event("S1S"), metadata=national())
    reply = await stub.RecordLedgerEvents(
        batch(event("S1S"), event("S2S"), event("S3S"), event("S2S")), metadata=national()
    )
    # S1S came before; S2S is new, then a redelivery inside the same batch.
    assert list(reply.recorded) == [False, True, True, False]
    async with storage.sessions() as session:
        ids = await session.scalars(select(LedgerEntryRow.event_id).order_by("event_id"))
        assert list(ids) == ["S1S", "S2S", "S3S"]
        spend = await session.scalar(text("SELECT uncleared_fen FROM pair_spend"))
    assert spend == 3 * 4_889


async def test_a_full_batch_is_recorded_by_one_call(clearing: tuple[Stub, Storage]) -> None:
    stub, storage = clearing
    reply = await stub.RecordLedgerEvents(
        batch(*(event(f"F{n}S") for n in range(500))), metadata=national()
    )
    assert list(reply.recorded) == [True] * 500
    async with storage.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(LedgerEntryRow))
        spend = await session.scalar(text("SELECT uncleared_fen FROM pair_spend"))
    assert (count, spend) == (500, 500 * 4_889)


async def test_a_batch_with_one_bad_event_records_none_and_names_it(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    await stub.RecordLedgerEvent(event("S1S"), metadata=national())
    conflicting = batch(event("S2S"), event("S1S", fund=4_890), event("S3S"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.RecordLedgerEvents(conflicting, metadata=national())
    info = error_info(raised.value)
    assert info is not None
    assert (raised.value.code(), info.reason, dict(info.metadata)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "LEDGER_EVENT_CONFLICT",
        {"eventId": "S1S"},
    )
    broken = batch(event("S4S"), event("S5S"))
    broken.events[1].event.fund_pay_sumamt.amount_fen += 1
    assert await refusal(stub.RecordLedgerEvents(broken, metadata=national())) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "LEDGER_EVENT_INVALID",
    )
    # The same new event twice in one call, with other content the second time.
    twice = batch(event("S6S"), event("S6S", fund=4_890))
    assert await refusal(stub.RecordLedgerEvents(twice, metadata=national())) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "LEDGER_EVENT_CONFLICT",
    )
    async with storage.sessions() as session:
        ids = await session.scalars(select(LedgerEntryRow.event_id))
        assert list(ids) == ["S1S"]
        spend = await session.scalar(text("SELECT uncleared_fen FROM pair_spend"))
    assert spend == 4_889
    for size in (0, 501):
        many = batch(*(event(f"B{n}S") for n in range(size)))
        assert await refusal(stub.RecordLedgerEvents(many, metadata=national())) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "LEDGER_EVENT_INVALID",
        )
    assert await refusal(stub.RecordLedgerEvents(batch(event()), metadata=province("110000"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
