"""Prepayments between provinces on SQLite and PostgreSQL: sizing, usage warnings, top-ups."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
from medsettle.clearing.v1 import clearing_service_pb2
from sqlalchemy import text

from services.clearing import logic
from services.common.runtime import Storage
from services.common.values import money
from tests.harness import national, province, refusal
from tests.integration.clearing.conftest import ledger_event, record

if TYPE_CHECKING:
    from tests.integration.clearing.conftest import Stub

_C = clearing_service_pb2
HEBEI, BEIJING = "130000", "110000"


async def warnings(stub: Stub) -> list[tuple[int, str, bool]]:
    reply = await stub.GetPrepaymentWarnings(
        _C.GetPrepaymentWarningsRequest(year=2026), metadata=national()
    )
    return [(w.level, w.usage, w.top_up_requested) for w in reply.warnings]


async def set_prepayment(stub: Stub, fen: int, insured_prov: str = HEBEI) -> _C.Prepayment:
    return await stub.SetPrepayment(
        _C.SetPrepaymentRequest(
            year=2026, insured_prov=insured_prov, treatment_prov=BEIJING, amount=money(fen)
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


async def uncleared(stub: Stub, year: int) -> int:
    listed = await stub.GetPrepayments(_C.GetPrepaymentsRequest(year=year), metadata=national())
    (pair,) = listed.prepayments
    return pair.uncleared_spend.amount_fen


async def ledger_uncleared(storage: Storage, year: int) -> int:
    """The same figure summed from the ledger itself, independently of the running total."""
    query = text(
        "SELECT COALESCE(SUM(hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen), 0) "
        "FROM ledger_entries WHERE period LIKE :year AND (cleared_period IS NULL OR "
        "cleared_period NOT IN (SELECT period FROM clearing_periods WHERE state = 3))"
    )
    async with storage.sessions() as session:
        return int(await session.scalar(query, {"year": f"{year}-%"}) or 0)


async def test_uncleared_spend_is_a_running_total_that_closing_lowers_in_each_entrys_own_year(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    for year in (2026, 2027):
        await stub.SetPrepayment(
            _C.SetPrepaymentRequest(
                year=year, insured_prov=HEBEI, treatment_prov=BEIJING, amount=money(100_000)
            ),
            metadata=national(),
        )
    december, january = dt.date(2026, 12, 30), dt.date(2027, 1, 5)
    await record(stub, "D1", medfee=2_000, fund=1_000, acct=200, day=december)
    await record(stub, "D2", medfee=900, fund=700, day=december)
    await record(stub, "D2", medfee=900, fund=700, day=december, cancel=True)
    await record(stub, "J1", medfee=500, fund=300, day=january)
    await record(stub, "J2", medfee=90, fund=40, day=january)  # to be disputed
    assert (await uncleared(stub, 2026), await uncleared(stub, 2027)) == (1_200, 340)

    # January's clearing also takes December's entries (December was never cleared).
    await stub.ConfirmTreatmentPeriod(
        _C.ConfirmTreatmentPeriodRequest(period="2027-01", province=BEIJING), metadata=national()
    )
    await stub.RunClearing(
        _C.RunClearingRequest(request_id="r-1", period="2027-01"), metadata=national()
    )
    assert (await uncleared(stub, 2026), await uncleared(stub, 2027)) == (1_200, 340)
    run = await stub.DisputeSettlement(
        _C.DisputeSettlementRequest(period="2027-01", setl_id="J2", reason="not ours"),
        metadata=province(HEBEI),
    )
    assert run.state == _C.DISPUTE_STATE_OPEN
    period = await stub.GetClearingRun(
        _C.GetClearingRunRequest(period="2027-01"), metadata=national()
    )
    closed = await stub.ConfirmStatement(
        _C.ConfirmStatementRequest(
            period="2027-01", province=HEBEI, statement_hash=period.period.statement_hash
        ),
        metadata=province(HEBEI),
    )
    assert closed.state == _C.PERIOD_STATE_CLOSED
    # Each year loses what the closed period cleared of it; the disputed J2 stays in 2027's.
    assert (await uncleared(stub, 2026), await uncleared(stub, 2027)) == (0, 40)
    await record(stub, "J3", medfee=80, fund=60, acct=5, day=january)
    assert (await uncleared(stub, 2026), await uncleared(stub, 2027)) == (0, 105)
    assert (await ledger_uncleared(storage, 2026), await ledger_uncleared(storage, 2027)) == (
        0,
        105,
    )


async def test_a_batch_counts_each_pair_once_and_warns_once_for_its_crossing(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    await set_prepayment(stub, 10_000)
    await set_prepayment(stub, 100, insured_prov="510000")
    batch = _C.RecordLedgerEventsRequest(
        events=[
            _C.TracedLedgerEvent(event=ledger_event("B1", medfee=5_000, fund=4_000)),
            _C.TracedLedgerEvent(event=ledger_event("B2", medfee=100, fund=90, insured="510100")),
            _C.TracedLedgerEvent(event=ledger_event("B3", medfee=4_000, fund=3_500)),
        ]
    )
    reply = await stub.RecordLedgerEvents(batch, metadata=national())
    assert list(reply.recorded) == [True, True, True]
    # 4,000 + 3,500 of 10,000 crossed 70% once, inside the batch: one warning, at the batch's end.
    # Sichuan's 90 of 100 crossed both thresholds: the red one asks for a top-up.
    assert sorted(await warnings(stub)) == [
        (_C.USAGE_LEVEL_YELLOW, "0.7500", False),
        (_C.USAGE_LEVEL_YELLOW, "0.9000", False),
        (_C.USAGE_LEVEL_RED, "0.9000", True),
    ]
    listed = await stub.GetPrepayments(_C.GetPrepaymentsRequest(year=2026), metadata=national())
    assert [(p.insured_prov, p.uncleared_spend.amount_fen) for p in listed.prepayments] == [
        (HEBEI, 7_500),
        ("510000", 90),
    ]
    async with storage.sessions() as session:
        totals = await session.execute(
            text("SELECT insured_prov, uncleared_fen FROM pair_spend ORDER BY 1")
        )
        assert [tuple(t) for t in totals] == [(HEBEI, 7_500), ("510000", 90)]
