"""Reconciliation with the platform: 3201 totals and 3202 details (clearing)."""

from __future__ import annotations

from typing import Any

from medsettle.clearing.v1 import clearing_service_pb2

from gateway.envelope import EnvelopeError, yuan
from gateway.fields import Node
from gateway.transactions.base import Call, Outcome
from gateway.upstreams import AS_GATEWAY, ask
from services.common.values import date_to_proto, money

_C = clearing_service_pb2
# stmt_rslt codes of the national interface.
_STMT_RESULT = {
    _C.RECONCILE_RESULT_BALANCED: "0",
    _C.RECONCILE_RESULT_PLATFORM_ONLY: "1",
    _C.RECONCILE_RESULT_INSTITUTION_ONLY: "2",
    _C.RECONCILE_RESULT_MISMATCH: "3",
}
MAX_DETAIL_LINES = 10_000


def _dates(data: Node) -> dict[str, Any]:
    begin, end = data.date("stmt_begndate"), data.date("stmt_enddate")
    assert begin is not None and end is not None
    return {"begin_date": date_to_proto(begin), "end_date": date_to_proto(end)}


def _amount(node: Node, name: str) -> int:
    value = node.amount(name)
    assert value is not None
    return value


async def reconcile_totals(call: Call) -> Outcome:
    """3201: the institution's totals for a date range, insutype and clr_type."""
    data = call.input.child("data")
    setl_optins = data.text("setl_optins", 6)
    count = int(data.number("fixmedins_setl_cnt", 0))
    request = _C.ReconcileTotalsRequest(
        fixmedins_code=call.fixmedins_code,
        insutype=data.code("insutype", ("310", "390")),
        clr_type=data.code("clr_type", ("11", "21")),
        include_cancellations=data.code("refd_setl_flag", ("0", "1"), required=False) != "0",
        institution=_C.ReconcileFigures(
            settlement_count=count,
            medfee_sumamt=money(_amount(data, "medfee_sumamt")),
            fund_pay_sumamt=money(_amount(data, "fund_pay_sumamt")),
            acct_pay=money(_amount(data, "acct_pay")),
        ),
        **_dates(data),
    )
    answer = await ask(
        call.upstreams.clearing.ReconcileTotals(request, metadata=AS_GATEWAY), "clearing"
    )
    info = {
        "setl_optins": setl_optins,
        "stmt_rslt": _STMT_RESULT[answer.result],
        "stmt_rslt_dscr": answer.description,
    }
    return Outcome({"stmtinfo": info})


def _detail_line(node: Node) -> _C.ReconcileLine:
    return _C.ReconcileLine(
        setl_id=node.text("setl_id", 30),
        mdtrt_id=node.text("mdtrt_id", 30, required=False),
        psn_no=node.text("psn_no", 30, required=False),
        medfee_sumamt=money(_amount(node, "medfee_sumamt")),
        fund_pay_sumamt=money(_amount(node, "fund_pay_sumamt")),
        acct_pay=money(_amount(node, "acct_pay")),
        cancelled=node.flag("refd_setl_flag"),
    )


async def reconcile_details(call: Call) -> Outcome:
    """3202: the institution's settlements, sent inline in `input.detail` (the 9101 file's
    seven columns as fields); the answer lists every settlement that does not reconcile."""
    data = call.input.child("data")
    if data.text("file_qury_no", 30, required=False) and "detail" not in call.envelope.input:
        raise EnvelopeError(
            "input.detail is required: this platform takes the detail lines inline, not as a "
            "9101 file"
        )
    lines = [_detail_line(node) for node in call.input.children("detail", most=MAX_DETAIL_LINES)]
    request = _C.ReconcileDetailsRequest(
        fixmedins_code=call.fixmedins_code,
        clr_type=data.code("clr_type", ("11", "21"), required=False),
        lines=lines,
        **_dates(data),
    )
    answer = await ask(
        call.upstreams.clearing.ReconcileDetails(request, metadata=AS_GATEWAY), "clearing"
    )
    rows = []
    for difference in answer.differences:
        shown = difference.platform if difference.platform.setl_id else difference.institution
        rows.append(
            {
                "psn_no": shown.psn_no,
                "mdtrt_id": shown.mdtrt_id,
                "setl_id": shown.setl_id,
                "msgid": "",
                "stmt_rslt": _STMT_RESULT[difference.result],
                "refd_setl_flag": "1" if shown.cancelled else "0",
                "memo": difference.memo,
                "medfee_sumamt": yuan(shown.medfee_sumamt.amount_fen),
                "fund_pay_sumamt": yuan(shown.fund_pay_sumamt.amount_fen),
                "acct_pay": yuan(shown.acct_pay.amount_fen),
            }
        )
    summary = {
        "stmt_rslt": "3" if rows else "0",
        "balanced_count": answer.balanced_count,
        "difference_count": len(rows),
    }
    return Outcome({"stmtinfo": summary, "detail": rows})
