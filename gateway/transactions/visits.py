"""Registration and admission: 2201/2202/2203 (outpatient), 2401/2402/2404/2405 (inpatient)."""

from __future__ import annotations

from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2

from gateway.envelope import EnvelopeError
from gateway.fields import Node
from gateway.national import INSUTYPES
from gateway.transactions.base import Call, Outcome, credential, emergency
from gateway.upstreams import AS_GATEWAY, ask
from services.common.values import date_to_proto

_OUTPATIENT_TYPES = ("11", "14")
_MAX_DIAGNOSES = 20


def _diagnoses(nodes: list[Node]) -> list[settlement_pb2.Diagnosis]:
    return [
        settlement_pb2.Diagnosis(
            diag_code=node.text("diag_code", 20),
            diag_name=node.text("diag_name", 100),
            main=node.flag("maindiag_flag") or node.text("diag_srt_no", 2, required=False) == "1",
        )
        for node in nodes
    ]


async def _admit(
    call: Call, node: Node, *, med_type: str, visit_no: str, diagnoses: list[Node]
) -> settlement_pb2.Visit:
    kind, number, card_sn = credential(node)
    begin = node.moment("begntime")
    assert begin is not None
    request = settlement_service_pb2.AdmitVisitRequest(
        request_id=call.request_id,
        fixmedins_code=call.fixmedins_code,
        ipt_otp_no=node.text(visit_no, 30),
        credential_type=kind,  # type: ignore[arg-type]
        credential_no=number,
        card_sn=card_sn,
        insutype=node.code("insutype", INSUTYPES),
        med_type=med_type,
        begin_date=date_to_proto(begin.date()),
        emergency=emergency(node),
        diagnoses=_diagnoses(diagnoses),
        psn_no=node.text("psn_no", 30),
    )
    return await ask(
        call.upstreams.settlement.AdmitVisit(request, metadata=AS_GATEWAY), "settlement"
    )


async def register_outpatient(call: Call) -> Outcome:
    """2201: register an outpatient visit (ordinary outpatient until 2203 says otherwise)."""
    data = call.input.child("data")
    med_type = data.code("med_type", _OUTPATIENT_TYPES, required=False) or "11"
    visit = await _admit(call, data, med_type=med_type, visit_no="ipt_otp_no", diagnoses=[])
    output = {"mdtrt_id": visit.mdtrt_id, "psn_no": visit.psn_no, "ipt_otp_no": visit.ipt_otp_no}
    return Outcome({"data": output}, reference=visit.mdtrt_id)


async def admit_inpatient(call: Call) -> Outcome:
    """2401: admit an inpatient."""
    info = call.input.child("mdtrtinfo")
    med_type = info.code("med_type", ("21",))
    diagnoses = call.input.children("diseinfo", most=_MAX_DIAGNOSES, required=False)
    visit = await _admit(call, info, med_type=med_type, visit_no="ipt_no", diagnoses=diagnoses)
    return Outcome({"result": {"mdtrt_id": visit.mdtrt_id}}, reference=visit.mdtrt_id)


async def upload_visit_info(call: Call) -> Outcome:
    """2203 / 2203A: the outpatient visit's medical type and diagnoses."""
    info = call.input.child("mdtrtinfo")
    request = settlement_service_pb2.UpdateVisitRequest(
        mdtrt_id=info.text("mdtrt_id", 30),
        fixmedins_code=call.fixmedins_code,
        psn_no=info.text("psn_no", 30),
        med_type=info.code("med_type", _OUTPATIENT_TYPES),
        diagnoses=_diagnoses(call.input.children("diseinfo", most=_MAX_DIAGNOSES, required=False)),
    )
    await ask(call.upstreams.settlement.UpdateVisit(request, metadata=AS_GATEWAY), "settlement")
    return Outcome({}, reference=request.mdtrt_id)


async def discharge(call: Call) -> Outcome:
    """2402: record the discharge."""
    info = call.input.child("dscginfo")
    end = info.moment("endtime")
    assert end is not None
    request = settlement_service_pb2.DischargeVisitRequest(
        mdtrt_id=info.text("mdtrt_id", 30),
        fixmedins_code=call.fixmedins_code,
        psn_no=info.text("psn_no", 30),
        end_date=date_to_proto(end.date()),
    )
    await ask(call.upstreams.settlement.DischargeVisit(request, metadata=AS_GATEWAY), "settlement")
    return Outcome({}, reference=request.mdtrt_id)


async def undo_discharge(call: Call) -> Outcome:
    """2405: cancel the discharge."""
    data = call.input.child("data")
    request = settlement_service_pb2.ReopenVisitRequest(
        mdtrt_id=data.text("mdtrt_id", 30),
        fixmedins_code=call.fixmedins_code,
        psn_no=data.text("psn_no", 30),
    )
    await ask(call.upstreams.settlement.ReopenVisit(request, metadata=AS_GATEWAY), "settlement")
    return Outcome({}, reference=request.mdtrt_id)


async def cancel_visit(call: Call) -> Outcome:
    """2202 / 2404: cancel a registration or an admission without a live settlement."""
    data = call.input.child("data")
    mdtrt_id = data.text("mdtrt_id", 30)
    await cancel_visit_by_id(call, mdtrt_id, data.text("psn_no", 30))
    return Outcome({}, reference=mdtrt_id)


async def cancel_visit_by_id(call: Call, mdtrt_id: str, psn_no: str) -> None:
    """CancelVisit for this institution (2202, 2404 and the reversal of 2201/2401)."""
    if not mdtrt_id:
        raise EnvelopeError("the visit to cancel is unknown")
    request = settlement_service_pb2.CancelVisitRequest(
        request_id=call.request_id,
        mdtrt_id=mdtrt_id,
        fixmedins_code=call.fixmedins_code,
        psn_no=psn_no,
    )
    await ask(call.upstreams.settlement.CancelVisit(request, metadata=AS_GATEWAY), "settlement")
