"""ClearingService over gRPC: proto <-> domain, one transaction per call."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clearing import logic
from services.clearing.errors import LedgerEventConflict, LedgerEventInvalid
from services.clearing.models import LedgerEntryRow
from services.common.callers import caller_from_metadata
from services.common.errors import PermissionDenied
from services.common.fingerprint import fingerprint
from services.common.values import province_of

Context = grpc.aio.ServicerContext[Any, Any]


class ClearingServicer(clearing_service_pb2_grpc.ClearingServiceServicer):
    """Implements medsettle.clearing.v1.ClearingService."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def RecordLedgerEvent(
        self, request: clearing_service_pb2.RecordLedgerEventRequest, context: Context
    ) -> clearing_service_pb2.RecordLedgerEventResponse:
        if not caller_from_metadata(context.invocation_metadata()).is_national:
            raise PermissionDenied("ledger events come from the national settlement outbox")
        event = request.event
        if request.request_id != event.event_id:
            raise LedgerEventInvalid("request_id must equal event.event_id")
        problem = logic.event_problem(
            event.event_id,
            event.setl_id,
            (event.treatment_admdvs, event.insuplc_admdvs),
            (
                event.hifp_pay.amount_fen,
                event.critical_illness_pay.amount_fen,
                event.maf_pay.amount_fen,
            ),
            event.fund_pay_sumamt.amount_fen,
        )
        if problem:
            raise LedgerEventInvalid(f"event {event.event_id}: {problem}")
        event_hash = fingerprint(event)
        when = event.event_time.ToDatetime(dt.UTC)
        row = LedgerEntryRow(
            event_id=event.event_id,
            kind=event.kind,
            setl_id=event.setl_id,
            mdtrt_id=event.mdtrt_id,
            psn_no=event.psn_no,
            fixmedins_code=event.fixmedins_code,
            treatment_admdvs=event.treatment_admdvs,
            treatment_prov=province_of(event.treatment_admdvs),
            insuplc_admdvs=event.insuplc_admdvs,
            insured_prov=province_of(event.insuplc_admdvs),
            insutype=event.insutype,
            med_type=event.med_type,
            event_time=when,
            period=logic.period_of(when),
            medfee_sumamt_fen=event.medfee_sumamt.amount_fen,
            hifp_pay_fen=event.hifp_pay.amount_fen,
            critical_pay_fen=event.critical_illness_pay.amount_fen,
            maf_pay_fen=event.maf_pay.amount_fen,
            acct_pay_fen=event.acct_pay.amount_fen,
            fund_pay_sumamt_fen=event.fund_pay_sumamt.amount_fen,
            psn_cash_pay_fen=event.psn_cash_pay.amount_fen,
            event_hash=event_hash,
            recorded_at=dt.datetime.now(dt.UTC),
        )
        stored_hash = ""
        try:
            async with self._sessions.begin() as session:
                stored = await session.get(LedgerEntryRow, event.event_id)
                if stored is None:
                    session.add(row)
                else:
                    stored_hash = stored.event_hash
        except IntegrityError:
            # A concurrent delivery of the same event committed first.
            async with self._sessions() as session:
                stored = await session.get(LedgerEntryRow, event.event_id)
            if stored is None:
                raise
            stored_hash = stored.event_hash
        if not stored_hash:
            return clearing_service_pb2.RecordLedgerEventResponse(recorded=True)
        if stored_hash != event_hash:
            raise LedgerEventConflict(
                f"event {event.event_id} was recorded with other content", eventId=event.event_id
            )
        return clearing_service_pb2.RecordLedgerEventResponse(recorded=False)
