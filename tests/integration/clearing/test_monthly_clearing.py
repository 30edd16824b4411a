"""Monthly clearing between provinces on SQLite and PostgreSQL: a period through every state."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
from medsettle.clearing.v1 import clearing_service_pb2
from sqlalchemy import text

from services.common.runtime import Storage
from tests.harness import national, province, refusal
from tests.integration.clearing.conftest import record

if TYPE_CHECKING:
    from tests.integration.clearing.conftest import Stub

_C = clearing_service_pb2
NOVEMBER = "2026-11"
DECEMBER = "2026-12"


async def november(stub: Stub) -> None:
    await record(stub, "S1", medfee=2_000, fund=1_000, acct=100)  # 河北 -> 北京
    await record(stub, "S2", medfee=3_000, fund=2_000, insured="510100")  # 四川 -> 北京
    await record(stub, "S3", medfee=900, fund=500, insured="110100", treatment="310100")
    await record(stub, "S4", medfee=400, fund=300, treatment="310100")  # 河北 -> 上海
    await record(stub, "S5", medfee=80, fund=50)  # 河北 -> 北京, to be disputed
    await record(stub, "S7", medfee=600, fund=400, insured="510100", cancel=False)
    await record(stub, "S7", medfee=600, fund=400, insured="510100", cancel=True)


def pairs(run: _C.ClearingRun) -> dict[tuple[str, str], int]:
    return {
        (s.insured_prov, s.treatment_prov): s.clearing_amount.amount_fen for s in run.statements
    }


async def ledger_sums(storage: Storage, period: str) -> dict[tuple[str, str], int]:
    """An independent SQL sum of the ledger entries cleared in a period."""
    query = text(
        "SELECT insured_prov, treatment_prov, "
        "SUM(hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen) FROM ledger_entries "
        "WHERE cleared_period = :period GROUP BY insured_prov, treatment_prov"
    )
    async with storage.sessions() as session:
        rows = await session.execute(query, {"period": period})
        return {(a, b): int(total) for a, b, total in rows}


def run_request(period: str, request_id: str = "run-1") -> _C.RunClearingRequest:
    return _C.RunClearingRequest(request_id=request_id, period=period)


async def test_a_period_goes_through_every_state_and_a_dispute_moves_to_the_next(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, storage = clearing
    await november(stub)
    assert await refusal(stub.RunClearing(run_request(NOVEMBER), metadata=national())) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TREATMENT_NOT_CONFIRMED",
    )
    confirm = _C.ConfirmTreatmentPeriodRequest(period=NOVEMBER, province="110000")
    assert await refusal(stub.ConfirmTreatmentPeriod(confirm, metadata=province("310000"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
    state = await stub.ConfirmTreatmentPeriod(confirm, metadata=province("110000"))
    assert (list(state.confirmed_treatment_provinces), list(state.pending_treatment_provinces)) == (
        ["110000"],
        ["310000"],
    )
    confirm.province = "310000"
    await stub.ConfirmTreatmentPeriod(confirm, metadata=national())

    run = await stub.RunClearing(run_request(NOVEMBER), metadata=national())
    assert run.period.state == _C.PERIOD_STATE_CLEARED
    assert pairs(run) == {
        ("110000", "310000"): 500,
        ("130000", "110000"): 1_150,  # S1 1,000 + 100 account, S5 50
        ("130000", "310000"): 300,
        ("510000", "110000"): 2_000,  # S2; S7 and its cancellation net to zero
    }
    assert pairs(run) == await ledger_sums(storage, NOVEMBER)
    assert {p.province: p.net.amount_fen for p in run.positions} == {
        "110000": 2_650,
        "130000": -1_450,
        "310000": 800,
        "510000": -2_000,
    }
    assert sum(p.net.amount_fen for p in run.positions) == 0
    assert [(t.province, t.to_central, t.amount.amount_fen) for t in run.transfers] == [
        ("110000", False, 2_650),
        ("130000", True, 1_450),
        ("310000", False, 800),
        ("510000", True, 2_000),
    ]
    again = await stub.RunClearing(run_request(NOVEMBER, "run-2"), metadata=national())
    assert again.period.statement_hash == run.period.statement_hash
    assert list(again.statements) == list(run.statements)

    dispute = _C.DisputeSettlementRequest(period=NOVEMBER, setl_id="S5", reason="billed twice")
    assert await refusal(stub.DisputeSettlement(dispute, metadata=province("510000"))) == (
        grpc.StatusCode.NOT_FOUND,
        "SETTLEMENT_NOT_IN_PERIOD",
    )
    disputed = await stub.DisputeSettlement(dispute, metadata=province("130000"))
    assert (disputed.state, disputed.insured_prov) == (_C.DISPUTE_STATE_OPEN, "130000")
    after = await stub.GetClearingRun(
        _C.GetClearingRunRequest(period=NOVEMBER), metadata=national()
    )
    assert pairs(after)[("130000", "110000")] == 1_100
    assert after.period.statement_hash != run.period.statement_hash
    assert pairs(after) == await ledger_sums(storage, NOVEMBER)

    stale = _C.ConfirmStatementRequest(
        period=NOVEMBER, province="130000", statement_hash=run.period.statement_hash
    )
    assert await refusal(stub.ConfirmStatement(stale, metadata=province("130000"))) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "STATEMENT_CHANGED",
    )
    for insured in ("130000", "510000", "110000"):
        confirmed = await stub.ConfirmStatement(
            _C.ConfirmStatementRequest(
                period=NOVEMBER, province=insured, statement_hash=after.period.statement_hash
            ),
            metadata=province(insured),
        )
    assert confirmed.state == _C.PERIOD_STATE_CLOSED

    # A late November settlement and the resolved dispute go to December.
    await record(stub, "S6", medfee=70, fund=60)
    assert await refusal(stub.RunClearing(run_request(NOVEMBER, "run-3"), metadata=national())) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "PERIOD_CLOSED",
    )
    resolved = await stub.ResolveDispute(
        _C.ResolveDisputeRequest(setl_id="S5"), metadata=province("130000")
    )
    assert resolved.state == _C.DISPUTE_STATE_RESOLVED
    await record(stub, "S8", medfee=100, fund=90, day=dt.date(2026, 12, 3))
    await stub.ConfirmTreatmentPeriod(
        _C.ConfirmTreatmentPeriodRequest(period=DECEMBER, province="110000"), metadata=national()
    )
    december = await stub.RunClearing(run_request(DECEMBER), metadata=national())
    assert pairs(december) == {("130000", "110000"): 50 + 60 + 90}
    assert pairs(december) == await ledger_sums(storage, DECEMBER)


async def test_a_province_sees_only_what_it_is_party_to(clearing: tuple[Stub, Storage]) -> None:
    stub, _ = clearing
    await november(stub)
    for treatment in ("110000", "310000"):
        await stub.ConfirmTreatmentPeriod(
            _C.ConfirmTreatmentPeriodRequest(period=NOVEMBER, province=treatment),
            metadata=national(),
        )
    await stub.RunClearing(run_request(NOVEMBER), metadata=national())
    seen = await stub.GetClearingRun(
        _C.GetClearingRunRequest(period=NOVEMBER), metadata=province("510000")
    )
    assert pairs(seen) == {("510000", "110000"): 2_000}
    assert [p.province for p in seen.positions] == ["510000"]
    assert [t.province for t in seen.transfers] == ["510000"]


async def test_replaying_every_ledger_event_changes_no_statement(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    await november(stub)
    for treatment in ("110000", "310000"):
        await stub.ConfirmTreatmentPeriod(
            _C.ConfirmTreatmentPeriodRequest(period=NOVEMBER, province=treatment),
            metadata=national(),
        )
    first = await stub.RunClearing(run_request(NOVEMBER), metadata=national())
    await november(stub)  # every event delivered a second time
    second = await stub.RunClearing(run_request(NOVEMBER, "run-2"), metadata=national())
    assert second.period.statement_hash == first.period.statement_hash
    assert await refusal(stub.RunClearing(run_request("2026-13"), metadata=national())) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PERIOD_INVALID",
    )
    assert await refusal(stub.RunClearing(run_request(NOVEMBER), metadata=province("110000"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED",
    )
