"""Daily statistics of the ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
from medsettle.clearing.v1 import clearing_service_pb2

from services.common.runtime import Storage
from services.common.values import date_to_proto
from tests.harness import national, province, refusal
from tests.integration.clearing.conftest import record

if TYPE_CHECKING:
    from tests.integration.clearing.conftest import Stub

_C = clearing_service_pb2


def request(first: dt.date, last: dt.date) -> _C.GetDailyStatisticsRequest:
    return _C.GetDailyStatisticsRequest(
        begin_date=date_to_proto(first), end_date=date_to_proto(last)
    )


async def test_days_pairs_and_medical_types_are_counted_net_of_cancellations(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    day = dt.date(2026, 11, 20)
    await record(stub, "S1", medfee=1_000, fund=800)
    await record(stub, "S2", medfee=500, fund=300, acct=100)
    await record(stub, "S2", medfee=500, fund=300, acct=100, cancel=True)
    await record(stub, "S3", medfee=90, fund=60, med_type="14")
    await record(stub, "S4", medfee=70, fund=50, insured="510100")
    await record(stub, "S5", medfee=40, fund=20, day=day + dt.timedelta(days=1))
    reply = await stub.GetDailyStatistics(
        request(day, day + dt.timedelta(days=1)), metadata=national()
    )
    got = [
        (
            f"{s.day.month:02d}-{s.day.day:02d}",
            s.insured_prov,
            s.med_type,
            s.settlement_count,
            s.cancellation_count,
            s.medfee_sumamt.amount_fen,
            s.fund_pay_sumamt.amount_fen,
            s.acct_pay.amount_fen,
        )
        for s in reply.statistics
    ]
    assert got == [
        ("11-20", "130000", "14", 1, 0, 90, 60, 0),
        ("11-20", "130000", "21", 2, 1, 1_000, 800, 0),
        ("11-20", "510000", "21", 1, 0, 70, 50, 0),
        ("11-21", "130000", "21", 1, 0, 40, 20, 0),
    ]
    sichuan = await stub.GetDailyStatistics(request(day, day), metadata=province("510000"))
    assert [(s.insured_prov, s.treatment_prov) for s in sichuan.statistics] == [
        ("510000", "110000")
    ]
    assert await refusal(
        stub.GetDailyStatistics(request(day, day + dt.timedelta(days=93)), metadata=national())
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "PERIOD_INVALID")
