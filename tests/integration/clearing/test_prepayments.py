"""Prepayments between provinces on SQLite and PostgreSQL: sizing, usage warnings, top-ups."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
from medsettle.clearing.v1 import clearing_service_pb2

from services.clearing import logic
from services.common.runtime import Storage
from services.common.values import money
from tests.harness import national, province, refusal
from tests.integration.clearing.conftest import record

if TYPE_CHECKING:
    from tests.integration.clearing.conftest import Stub

_C = clearing_service_pb2
HEBEI, BEIJING = "130000", "110000"


async def warnings(stub: Stub) -> list[tuple[int, str, bool]]:
    reply = await stub.GetPrepaymentWarnings(
        _C.GetPrepaymentWarningsRequest(year=2026), metadata=national()
    )
    return [(w.level, w.usage, w.top_up_requested) for w in reply.warnings]


async def set_prepayment(stub: Stub, fen: int) -> _C.Prepayment:
    return await stub.SetPrepayment(
        _C.SetPrepaymentRequest(
            year=2026, insured_prov=HEBEI, treatment_prov=BEIJING, amount=money(fen)
        ),
        metadata=national(),
    )


async def test_warnings_are_raised_once_per_crossing_at_70_and_90_percent(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    await set_prepayment(stub, 10_000)
    await record(stub, "S1", medfee=8_000, fund=6_999)  # 69.99%: nothing
    assert await warnings(stub) == []
    exposed = storage.metrics.exposition().decode()
    assert (
        'medsettle_prepayment_usage{insured_prov="130000",treatment_prov="110000",year="2026"} '
        "0.6999"
    ) in exposed
    assert (
        'medsettle_rpc_requests_total{code="OK",method="ClearingService/RecordLedgerEvent",'
        'process="clearing"} 1.0'
    ) in exposed
    await record(stub, "S2", medfee=10, fund=1)  # exactly 70.00%
    assert await warnings(stub) == [(_C.USAGE_LEVEL_YELLOW, "0.7000", False)]
    await record(stub, "S3", medfee=1_000, fund=500)  # 75%: still yellow, no new warning
    assert len(await warnings(stub)) == 1
    await record(stub, "S4", medfee=2_000, fund=1_500)  # exactly 90%: red, top-up requested
    assert (await warnings(stub))[1:] == [(_C.USAGE_LEVEL_RED, "0.9000", True)]
    await record(stub, "S5", medfee=2_000, fund=1_500)  # 105%: overdrawn, said so
    listed = await stub.GetPrepayments(_C.GetPrepaymentsRequest(year=2026), metadata=national())
    (pair,) = listed.prepayments
    assert (pair.level, pair.overdrawn, pair.usage) == (_C.USAGE_LEVEL_RED, True, "1.0500")
    assert pair.overdrawn_reason == "spend exceeds the prepayment by 5.00"
    assert len(await warnings(stub)) == 2

    # The top-up brings the usage under 70%; crossing again warns again, once.
    top_up = _C.TopUpPrepaymentRequest(
        request_id="t-1",
        year=2026,
        insured_prov=HEBEI,
        treatment_prov=BEIJING,
        amount=money(10_000),
    )
    topped = await stub.TopUpPrepayment(top_up, metadata=province(HEBEI))
    assert (topped.amount.amount_fen, topped.level, topped.overdrawn) == (
        20_000,
        _C.USAGE_LEVEL_NORMAL,
        False,
    )
    again = await stub.TopUpPrepayment(top_up, metadata=province(HEBEI))
    assert again.amount.amount_fen == 20_000
    top_up.amount.amount_fen = 1
    assert await refusal(stub.TopUpPrepayment(top_up, metadata=province(HEBEI))) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "TOP_UP_CONFLICT",
    )
    assert (
        'medsettle_rpc_requests_total{code="ALREADY_EXISTS",'
        'method="ClearingService/TopUpPrepayment",process="clearing"} 1.0'
    ) in storage.metrics.exposition().decode()
    await record(stub, "S6", medfee=4_000, fund=3_500)  # 14,000 / 20,000 = 70%
    assert (await warnings(stub))[2:] == [(_C.USAGE_LEVEL_YELLOW, "0.7000", False)]
    assert await refusal(stub.TopUpPrepayment(top_up, metadata=province(BEIJING))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )


async def test_prepayments_are_two_months_of_last_years_average_spend(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    # 2025: 120,000.00 of funds and account from 河北 to 北京 -> 2 x 10,000.00.
    await record(
        stub, "L1", medfee=15_000_000, fund=11_000_000, acct=1_000_000, day=dt.date(2025, 3, 1)
    )
    await record(stub, "L2", medfee=10, fund=7, day=dt.date(2025, 6, 1), insured="510100")
    await set_prepayment(stub, 1)  # set by hand for 2026 first: computing leaves it alone
    computed = await stub.ComputePrepayments(
        _C.ComputePrepaymentsRequest(year=2026), metadata=national()
    )
    amounts = {
        (p.insured_prov, p.treatment_prov): p.amount.amount_fen for p in computed.prepayments
    }
    assert amounts == {(HEBEI, BEIJING): 1, ("510000", BEIJING): 1}  # 7 / 6 rounds to 1
    hand = await set_prepayment(stub, 2_000_000)
    assert hand.set_by_hand
    assert logic.prepayment_from_spend(12_000_000) == 2_000_000
    seen = await stub.GetPrepayments(
        _C.GetPrepaymentsRequest(year=2026), metadata=province("510000")
    )
    assert [(p.insured_prov, p.treatment_prov) for p in seen.prepayments] == [("510000", BEIJING)]
    assert await refusal(
        stub.ComputePrepayments(_C.ComputePrepaymentsRequest(year=2026), metadata=province(HEBEI))
    ) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
