"""Hospital reconciliation (3201 totals, 3202 details) against the ledger, on both backends."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import grpc
from medsettle.clearing.v1 import clearing_service_pb2

from services.common.runtime import Storage
from services.common.values import date_to_proto, money
from tests.harness import province, refusal
from tests.integration.clearing.conftest import HOSPITAL, record

if TYPE_CHECKING:
    from tests.integration.clearing.conftest import Stub

GATEWAY = (("x-medsettle-caller", "gateway"),)
_C = clearing_service_pb2


async def ledger_of_november(stub: Stub) -> None:
    await record(stub, "S1", medfee=880_000, fund=495_000)
    await record(stub, "S2", medfee=10_000, fund=8_000, acct=1_000)
    await record(stub, "S3", medfee=6_429, fund=4_889, med_type="14")  # outpatient
    await record(stub, "S2", medfee=10_000, fund=8_000, acct=1_000, cancel=True)
    await record(stub, "S4", medfee=5_000, fund=4_000, day=dt.date(2026, 12, 10))


def totals(
    count: int, medfee: int, fund: int, acct: int, *, refunds: bool
) -> _C.ReconcileTotalsRequest:
    return _C.ReconcileTotalsRequest(
        fixmedins_code=HOSPITAL,
        insutype="310",
        clr_type="21",
        begin_date=date_to_proto(dt.date(2026, 11, 1)),
        end_date=date_to_proto(dt.date(2026, 11, 30)),
        include_cancellations=refunds,
        institution=_C.ReconcileFigures(
            settlement_count=count,
            medfee_sumamt=money(medfee),
            fund_pay_sumamt=money(fund),
            acct_pay=money(acct),
        ),
    )


async def test_totals_balance_with_and_without_cancellations(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    await ledger_of_november(stub)
    # Without cancellations only S1 counts (S2 was cancelled, S3 is outpatient, S4 is December).
    live = await stub.ReconcileTotals(
        totals(1, 880_000, 495_000, 0, refunds=False), metadata=GATEWAY
    )
    assert (live.result, live.description) == (_C.RECONCILE_RESULT_BALANCED, "")
    # With them: S1, S2 and S2's cancellation, netted.
    net = await stub.ReconcileTotals(totals(3, 880_000, 495_000, 0, refunds=True), metadata=GATEWAY)
    assert net.result == _C.RECONCILE_RESULT_BALANCED
    assert net.platform.settlement_count == 3


async def test_a_totals_mismatch_says_what_differs_with_the_platforms_figures(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    await ledger_of_november(stub)
    answer = await stub.ReconcileTotals(
        totals(2, 890_000, 503_000, 1_000, refunds=False), metadata=GATEWAY
    )
    assert answer.result == _C.RECONCILE_RESULT_MISMATCH
    assert answer.description == (
        "fixmedins_setl_cnt: platform 1, institution 2; "
        "medfee_sumamt: platform 8800.00, institution 8900.00; "
        "fund_pay_sumamt: platform 4950.00, institution 5030.00; "
        "acct_pay: platform 0.00, institution 10.00"
    )
    assert (answer.platform.settlement_count, answer.platform.medfee_sumamt.amount_fen) == (
        1,
        880_000,
    )


async def test_details_list_each_kind_of_difference(clearing: tuple[Stub, Storage]) -> None:
    stub, _ = clearing
    await ledger_of_november(stub)

    def line(
        setl_id: str, medfee: int, fund: int, acct: int = 0, cancelled: bool = False
    ) -> _C.ReconcileLine:
        return _C.ReconcileLine(
            setl_id=setl_id,
            medfee_sumamt=money(medfee),
            fund_pay_sumamt=money(fund),
            acct_pay=money(acct),
            cancelled=cancelled,
        )

    request = _C.ReconcileDetailsRequest(
        fixmedins_code=HOSPITAL,
        begin_date=date_to_proto(dt.date(2026, 11, 1)),
        end_date=date_to_proto(dt.date(2026, 11, 30)),
        lines=[
            line("S1", 880_000, 495_000),  # balanced
            line("S2", 10_000, 8_000, 1_000),  # the platform has it cancelled
            line("S3", 6_429, 4_800),  # fund differs
            line("S9", 100, 80),  # unknown to the platform
        ],
    )
    answer = await stub.ReconcileDetails(request, metadata=GATEWAY)
    assert answer.balanced_count == 1
    assert [
        (d.result, d.platform.setl_id, d.institution.setl_id, d.memo) for d in answer.differences
    ] == [
        (_C.RECONCILE_RESULT_MISMATCH, "S2", "S2", "the settlement is cancelled on the platform"),
        (
            _C.RECONCILE_RESULT_MISMATCH,
            "S3",
            "S3",
            "fund_pay_sumamt: platform 48.89, institution 48.00",
        ),
        (_C.RECONCILE_RESULT_INSTITUTION_ONLY, "", "S9", "not settled on the platform"),
    ]
    request.lines.pop(0)
    missing = await stub.ReconcileDetails(request, metadata=GATEWAY)
    assert (missing.differences[0].result, missing.differences[0].platform.setl_id) == (
        _C.RECONCILE_RESULT_PLATFORM_ONLY,
        "S1",
    )


async def test_reconciliation_refuses_bad_ranges_and_provinces(
    clearing: tuple[Stub, Storage],
) -> None:
    stub, _ = clearing
    backwards = totals(0, 0, 0, 0, refunds=False)
    backwards.end_date.CopyFrom(date_to_proto(dt.date(2026, 10, 1)))
    assert await refusal(stub.ReconcileTotals(backwards, metadata=GATEWAY)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "RECONCILE_INVALID",
    )
    assert await refusal(
        stub.ReconcileTotals(totals(0, 0, 0, 0, refunds=False), metadata=province("110000"))
    ) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
