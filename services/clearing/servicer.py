"""ClearingService over gRPC: proto <-> domain, one transaction per call."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clearing import logic
from services.clearing.errors import LedgerEventConflict, LedgerEventInvalid, ReconcileInvalid
from services.clearing.models import LedgerEntryRow
from services.clearing.repository import ClearingRepository
from services.common.callers import caller_from_metadata
from services.common.errors import PermissionDenied
from services.common.fingerprint import fingerprint
from services.common.values import date_from_proto, money, province_of

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

    # --- reconciliation (3201 / 3202) ---

    async def ReconcileTotals(
        self, request: clearing_service_pb2.ReconcileTotalsRequest, context: Context
    ) -> clearing_service_pb2.ReconcileTotalsResponse:
        _institution_caller(context)
        if request.insutype not in ("310", "390"):
            raise ReconcileInvalid("insutype must be 310 or 390", field="insutype")
        if request.clr_type not in ("11", "21"):
            raise ReconcileInvalid("clr_type must be 11 or 21", field="clr_type")
        start, stop = _range(request)
        async with self._sessions() as session:
            entries = await ClearingRepository(session).institution_entries(
                request.fixmedins_code,
                start,
                stop,
                logic.med_types_of(request.clr_type),
                request.insutype,
            )
        platform = logic.platform_totals(
            entries, include_cancellations=request.include_cancellations
        )
        theirs = request.institution
        institution = logic.Figures(
            theirs.settlement_count,
            theirs.medfee_sumamt.amount_fen,
            theirs.fund_pay_sumamt.amount_fen,
            theirs.acct_pay.amount_fen,
        )
        difference = logic.totals_difference(platform, institution)
        return clearing_service_pb2.ReconcileTotalsResponse(
            result=clearing_service_pb2.RECONCILE_RESULT_MISMATCH
            if difference
            else clearing_service_pb2.RECONCILE_RESULT_BALANCED,
            description=difference,
            platform=clearing_service_pb2.ReconcileFigures(
                settlement_count=platform.count,
                medfee_sumamt=money(platform.medfee),
                fund_pay_sumamt=money(platform.fund),
                acct_pay=money(platform.acct),
            ),
        )

    async def ReconcileDetails(
        self, request: clearing_service_pb2.ReconcileDetailsRequest, context: Context
    ) -> clearing_service_pb2.ReconcileDetailsResponse:
        _institution_caller(context)
        if request.clr_type not in ("", "11", "21"):
            raise ReconcileInvalid("clr_type must be 11, 21 or empty", field="clr_type")
        if len(request.lines) > logic.MAX_DETAIL_LINES:
            raise ReconcileInvalid(f"at most {logic.MAX_DETAIL_LINES} lines", field="lines")
        institution = [_line_from_proto(line) for line in request.lines]
        if len({line.setl_id for line in institution}) != len(institution):
            raise ReconcileInvalid("a setl_id is listed twice", field="lines")
        start, stop = _range(request)
        async with self._sessions() as session:
            repository = ClearingRepository(session)
            entries = await repository.institution_entries(
                request.fixmedins_code, start, stop, logic.med_types_of(request.clr_type)
            )
            settled = [entry.setl_id for entry in entries if not entry.cancellation]
            cancelled = await repository.cancelled_before(settled, stop)
        balanced, differences = logic.detail_differences(
            logic.platform_lines(entries, cancelled), institution
        )
        return clearing_service_pb2.ReconcileDetailsResponse(
            balanced_count=balanced,
            differences=[
                clearing_service_pb2.ReconcileDifference(
                    result=_RESULTS[result],
                    platform=_line_to_proto(ours),
                    institution=_line_to_proto(theirs),
                    memo=memo,
                )
                for result, ours, theirs, memo in differences
            ],
        )


_RESULTS = {
    logic.BALANCED: clearing_service_pb2.RECONCILE_RESULT_BALANCED,
    logic.PLATFORM_ONLY: clearing_service_pb2.RECONCILE_RESULT_PLATFORM_ONLY,
    logic.INSTITUTION_ONLY: clearing_service_pb2.RECONCILE_RESULT_INSTITUTION_ONLY,
    logic.MISMATCH: clearing_service_pb2.RECONCILE_RESULT_MISMATCH,
}


def _institution_caller(context: Context) -> None:
    """Institutions reconcile through the gateway (which names them); national may too."""
    caller = caller_from_metadata(context.invocation_metadata())
    if caller.kind not in ("gateway", "national"):
        raise PermissionDenied("reconciliation is for institutions, through the gateway")


def _range(request: Any) -> tuple[dt.datetime, dt.datetime]:
    if not request.fixmedins_code or len(request.fixmedins_code) > 30:
        raise ReconcileInvalid("fixmedins_code is required", field="fixmedins_code")
    begin = date_from_proto(request.begin_date, "begin_date")
    end = date_from_proto(request.end_date, "end_date")
    problem = logic.range_problem(begin, end)
    if problem:
        raise ReconcileInvalid(problem, field="end_date")
    return logic.day_range(begin, end)


def _line_from_proto(line: clearing_service_pb2.ReconcileLine) -> logic.Line:
    if not line.setl_id or len(line.setl_id) > 30:
        raise ReconcileInvalid("every line needs a setl_id of at most 30 characters")
    return logic.Line(
        line.setl_id,
        line.mdtrt_id,
        line.psn_no,
        line.medfee_sumamt.amount_fen,
        line.fund_pay_sumamt.amount_fen,
        line.acct_pay.amount_fen,
        line.cancelled,
    )


def _line_to_proto(line: logic.Line | None) -> clearing_service_pb2.ReconcileLine:
    if line is None:
        return clearing_service_pb2.ReconcileLine()
    return clearing_service_pb2.ReconcileLine(
        setl_id=line.setl_id,
        mdtrt_id=line.mdtrt_id,
        psn_no=line.psn_no,
        medfee_sumamt=money(line.medfee),
        fund_pay_sumamt=money(line.fund),
        acct_pay=money(line.acct),
        cancelled=line.cancelled,
    )
