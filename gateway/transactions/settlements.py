"""Pre-settlement, settlement and its cancellation: 2206/2207/2208 and 2303/2304/2305."""

from __future__ import annotations

from collections.abc import Awaitable

from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2

from gateway.envelope import EnvelopeError
from gateway.fields import Node
from gateway.national import CREDENTIAL_TYPES, INSUTYPES, cancellation_output, settlement_output
from gateway.transactions.base import CREDENTIAL_NO_LIMIT, Call, Outcome
from gateway.upstreams import AS_GATEWAY, ask
from services.common.awaiting import both
from services.common.values import money

_FEE_FOR_ITEM = "01"


def _settle_fields(data: Node, *, account_flag_required: bool) -> tuple[str, bool, int]:
    """Checks shared by 2206/2207/2303/2304; returns (mdtrt_cert_type, acct_used, medfee)."""
    cert_type = data.code("mdtrt_cert_type", CREDENTIAL_TYPES)
    data.text("mdtrt_cert_no", CREDENTIAL_NO_LIMIT)
    data.code("insutype", INSUTYPES)
    if data.code("psn_setlway", ("01", "02")) != _FEE_FOR_ITEM:
        raise EnvelopeError(
            f"{data.path}.psn_setlway: cross-province settlement is fee-for-item (01) only"
        )
    if data.flag("mid_setl_flag"):
        raise EnvelopeError(f"{data.path}.mid_setl_flag: interim settlement is not offered")
    acct_used = data.flag("acct_used_flag", required=account_flag_required)
    medfee = data.amount("medfee_sumamt")
    assert medfee is not None
    return cert_type, acct_used, medfee


async def _compute(call: Call, *, settle: bool, outpatient: bool) -> Outcome:
    data = call.input.child("data")
    cert_type, acct_used, medfee = _settle_fields(data, account_flag_required=settle)
    if outpatient:
        data.text("chrg_bchno", 30)
        data.code("med_type", ("11", "14"))
    mdtrt_id = data.text("mdtrt_id", 30)
    psn_no = data.text("psn_no", 30)
    service = call.upstreams.settlement
    computed: Awaitable[settlement_pb2.Settlement]
    if settle:
        request = settlement_service_pb2.SettleVisitRequest(
            request_id=call.request_id,
            mdtrt_id=mdtrt_id,
            fixmedins_code=call.fixmedins_code,
            psn_no=psn_no,
            acct_used=acct_used,
            medfee_sumamt=money(medfee),
        )
        computed = ask(service.SettleVisit(request, metadata=AS_GATEWAY), "settlement")
    else:
        preview = settlement_service_pb2.PreSettleRequest(
            mdtrt_id=mdtrt_id,
            fixmedins_code=call.fixmedins_code,
            psn_no=psn_no,
            acct_used=acct_used,
            medfee_sumamt=money(medfee),
        )
        computed = ask(service.PreSettle(preview, metadata=AS_GATEWAY), "settlement")
    # The person's details for setlinfo are read while the settlement is computed (when 1101
    # did not just bring them); the settlement's own refusal, if any, is the one reported.
    settlement, person = await both(computed, call.persons.person(psn_no))
    output = settlement_output(
        settlement,
        person,
        mdtrt_cert_type=cert_type,
        medins_setl_id=call.envelope.msgid,
        with_setl_id=settle,
    )
    return Outcome(output, reference=settlement.setl_id if settle else mdtrt_id)


async def pre_settle_outpatient(call: Call) -> Outcome:
    """2206."""
    return await _compute(call, settle=False, outpatient=True)


async def settle_outpatient(call: Call) -> Outcome:
    """2207."""
    return await _compute(call, settle=True, outpatient=True)


async def pre_settle_inpatient(call: Call) -> Outcome:
    """2303."""
    return await _compute(call, settle=False, outpatient=False)


async def settle_inpatient(call: Call) -> Outcome:
    """2304."""
    return await _compute(call, settle=True, outpatient=False)


async def cancel_settlement_by_id(
    call: Call, setl_id: str, mdtrt_id: str, psn_no: str
) -> settlement_pb2.Settlement:
    """CancelSettlement for this institution (2208, 2305 and the reversal of 2207/2304)."""
    request = settlement_service_pb2.CancelSettlementRequest(
        request_id=call.request_id,
        setl_id=setl_id,
        mdtrt_id=mdtrt_id,
        fixmedins_code=call.fixmedins_code,
        psn_no=psn_no,
    )
    return await ask(
        call.upstreams.settlement.CancelSettlement(request, metadata=AS_GATEWAY), "settlement"
    )


async def _cancel(call: Call, *, inpatient: bool) -> Outcome:
    data = call.input.child("data")
    cancelled = await cancel_settlement_by_id(
        call, data.text("setl_id", 30), data.text("mdtrt_id", 30), data.text("psn_no", 30)
    )
    output = cancellation_output(cancelled, call.envelope.msgid, extra_funds=inpatient)
    return Outcome(output, reference=cancelled.setl_id)


async def cancel_outpatient_settlement(call: Call) -> Outcome:
    """2208."""
    return await _cancel(call, inpatient=False)


async def cancel_inpatient_settlement(call: Call) -> Outcome:
    """2305."""
    return await _cancel(call, inpatient=True)
