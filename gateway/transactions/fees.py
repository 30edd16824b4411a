"""Fee details: 2204 / 2301 upload, 2205 / 2302 cancel."""

from __future__ import annotations

from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2

from gateway.envelope import EnvelopeError
from gateway.fields import Node
from gateway.national import fee_result
from gateway.transactions.base import Call, Outcome
from gateway.upstreams import AS_GATEWAY, ask
from services.common.values import date_to_proto, money

# Lines per upload; the settlement service accepts the same.
MAX_LINES = 1000
_ALL_LINES = "0000"


def _fee_line(node: Node) -> settlement_pb2.FeeLine:
    occurred = node.moment("fee_ocur_time")
    assert occurred is not None
    amount = node.amount("det_item_fee_sumamt")
    assert amount is not None
    cnt = node.number("cnt", 4)
    if cnt.startswith("-"):
        raise EnvelopeError(
            f"{node.path}.cnt is negative: refunds are made by cancelling the line (2302) "
            "and uploading the corrected one"
        )
    return settlement_pb2.FeeLine(
        feedetl_sn=node.text("feedetl_sn", 30),
        med_list_codg=node.text("med_list_codg", 50),
        medins_list_codg=node.text("medins_list_codg", 150),
        cnt=cnt,
        pric=node.number("pric", 6),
        amount=money(amount),
        fee_date=date_to_proto(occurred.date()),
    )


async def upload_fees(call: Call) -> Outcome:
    """2204 / 2301: classify and store the lines of one visit; one result row per line."""
    nodes = call.input.children("feedetail", most=MAX_LINES)
    visits = {node.text("mdtrt_id", 30) for node in nodes}
    persons = {node.text("psn_no", 30) for node in nodes}
    if len(visits) != 1 or len(persons) != 1:
        raise EnvelopeError("input.feedetail: every line of one upload must name the same visit")
    lines = [_fee_line(node) for node in nodes]
    serials = [line.feedetl_sn for line in lines]
    if len(set(serials)) != len(serials):
        raise EnvelopeError("input.feedetail: a feedetl_sn appears twice")
    request = settlement_service_pb2.UploadFeesRequest(
        request_id=call.request_id,
        mdtrt_id=visits.pop(),
        fixmedins_code=call.fixmedins_code,
        psn_no=persons.pop(),
        lines=lines,
    )
    reply = await ask(
        call.upstreams.settlement.UploadFees(request, metadata=AS_GATEWAY), "settlement"
    )
    results = [
        fee_result(classified, line.cnt, line.pric)
        for classified, line in zip(reply.lines, lines, strict=True)
    ]
    return Outcome({"result": results}, reference=request.mdtrt_id)


async def _cancel(call: Call, mdtrt_id: str, psn_no: str, feedetl_sn: str, key: str) -> None:
    request = settlement_service_pb2.CancelFeesRequest(
        request_id=key,
        mdtrt_id=mdtrt_id,
        fixmedins_code=call.fixmedins_code,
        psn_no=psn_no,
        feedetl_sn=feedetl_sn,
    )
    await ask(call.upstreams.settlement.CancelFees(request, metadata=AS_GATEWAY), "settlement")


async def cancel_inpatient_fees(call: Call) -> Outcome:
    """2302: cancel listed lines ("0000" cancels every unsettled line of the visit)."""
    nodes = call.input.children("data", most=MAX_LINES)
    # Every entry is checked before the first one is cancelled.
    entries = [
        (node.text("mdtrt_id", 30), node.text("psn_no", 30), node.text("feedetl_sn", 30))
        for node in nodes
    ]
    for index, (mdtrt_id, psn_no, feedetl_sn) in enumerate(entries):
        await _cancel(call, mdtrt_id, psn_no, feedetl_sn, f"{call.request_id}#{index}")
    return Outcome({})


async def cancel_outpatient_fees(call: Call) -> Outcome:
    """2205: cancel a visit's unsettled lines; only the whole visit ("0000") is supported."""
    data = call.input.child("data")
    batch = data.text("chrg_bchno", 30)
    if batch != _ALL_LINES:
        raise EnvelopeError(
            "input.data.chrg_bchno: this platform cancels outpatient fees for the whole visit "
            "only; send 0000"
        )
    mdtrt_id = data.text("mdtrt_id", 30)
    await _cancel(call, mdtrt_id, data.text("psn_no", 30), _ALL_LINES, call.request_id)
    return Outcome({}, reference=mdtrt_id)
