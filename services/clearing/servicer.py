"""ClearingService over gRPC: proto <-> domain, one transaction per call."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import grpc
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, ledger_pb2
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clearing import logic
from services.clearing.errors import (
    DisputeExists,
    DisputeNotFound,
    LedgerEventConflict,
    LedgerEventInvalid,
    PeriodClosed,
    PeriodInvalid,
    PeriodNotCleared,
    PrepaymentNotFound,
    ReconcileInvalid,
    SettlementNotInPeriod,
    StatementChanged,
    StatementNotFound,
    TopUpConflict,
    TreatmentNotConfirmed,
)
from services.clearing.models import (
    DisputeRow,
    PeriodRow,
    PrepaymentRow,
    PrepaymentWarningRow,
    StatementRow,
    TopUpRow,
)
from services.clearing.repository import ClearingRepository, Pair
from services.common.callers import Caller, caller_from_metadata
from services.common.db import insert_missing
from services.common.errors import PermissionDenied
from services.common.fingerprint import fingerprint
from services.common.metrics import ProcessMetrics
from services.common.values import (
    date_from_proto,
    date_to_proto,
    money,
    province_of,
    stored_utc,
    timestamp,
    yuan_text,
)

Context = grpc.aio.ServicerContext[Any, Any]
_LOGGER = logging.getLogger(__name__)
_MAX_EVENTS_PER_CALL = 500


class ClearingServicer(clearing_service_pb2_grpc.ClearingServiceServicer):
    """Implements medsettle.clearing.v1.ClearingService."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ProcessMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._sessions = sessions
        self._tracer = tracer or trace.NoOpTracer()
        self._usage = (metrics or ProcessMetrics("clearing")).gauge(
            "medsettle_prepayment_usage",
            "Uncleared spend over the prepayment, per year and province pair",
            ["year", "insured_prov", "treatment_prov"],
        )

    async def RecordLedgerEvent(
        self, request: clearing_service_pb2.RecordLedgerEventRequest, context: Context
    ) -> clearing_service_pb2.RecordLedgerEventResponse:
        _national(context, "ledger events come from the national settlement outbox")
        if request.request_id != request.event.event_id:
            raise LedgerEventInvalid("request_id must equal event.event_id")
        (recorded,) = await self._record([(_entry_values(request.event), None)])
        return clearing_service_pb2.RecordLedgerEventResponse(recorded=recorded)

    async def RecordLedgerEvents(
        self, request: clearing_service_pb2.RecordLedgerEventsRequest, context: Context
    ) -> clearing_service_pb2.RecordLedgerEventsResponse:
        _national(context, "ledger events come from the national settlement outbox")
        if not 1 <= len(request.events) <= _MAX_EVENTS_PER_CALL:
            raise LedgerEventInvalid(f"events: 1 to {_MAX_EVENTS_PER_CALL} per call")
        entries = [
            (
                _entry_values(traced.event),
                propagate.extract({"traceparent": traced.traceparent})
                if traced.traceparent
                else None,
            )
            for traced in request.events
        ]
        return clearing_service_pb2.RecordLedgerEventsResponse(recorded=await self._record(entries))

    async def _record(
        self, entries: list[tuple[dict[str, Any], otel_context.Context | None]]
    ) -> list[bool]:
        """Record ledger entries in one transaction, in order; per entry, False when it had been
        recorded before (or earlier in the same call). An earlier entry with other content is
        refused, and nothing of the call is recorded.

        The entries are inserted by one statement (one round trip per call instead of one per
        entry: a call carries up to a relay batch of settlements). Each entry that carries a
        trace gets a span in it covering that statement, linked to the call that brought it;
        the statement's own database span is under the call's. Then the new entries are counted
        in their pairs' totals, once per pair and in key order, so that concurrent batches lock
        the pairs they share in the same order."""
        call = trace.get_current_span().get_span_context()
        links = [Link(call)] if call.is_valid else None
        spans = [
            None
            if parent is None
            else self._tracer.start_span(
                "clearing/record_ledger_event", context=parent, kind=SpanKind.CONSUMER, links=links
            )
            for _, parent in entries
        ]
        traced = [span for span in spans if span is not None]
        try:
            recorded = await self._insert_entries([values for values, _ in entries])
            for span, was_new in zip(spans, recorded, strict=True):
                if span is not None:
                    span.set_attribute("medsettle.recorded", was_new)
        except Exception as error:
            for span in traced:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            for span in traced:
                span.end()
        return recorded

    async def _insert_entries(self, rows: list[dict[str, Any]]) -> list[bool]:
        """The transaction of `_record`."""
        recorded = []
        spent: dict[Pair, int] = {}
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            inserted = await repository.insert_entries(rows)
            first: dict[str, dict[str, Any]] = {}
            for values in rows:
                first.setdefault(values["event_id"], values)
            stored = {event_id: first[event_id]["event_hash"] for event_id in inserted}
            earlier = [event_id for event_id in first if event_id not in inserted]
            if earlier:
                stored.update(await repository.event_hashes(earlier))
            for values in rows:
                event_id = values["event_id"]
                if stored.get(event_id) != values["event_hash"]:
                    raise LedgerEventConflict(
                        f"event {event_id} was recorded with other content", eventId=event_id
                    )
                recorded.append(event_id in inserted and first.pop(event_id, None) is not None)
                if recorded[-1]:
                    pair = (
                        int(values["period"][:4]),
                        values["insured_prov"],
                        values["treatment_prov"],
                    )
                    spent[pair] = spent.get(pair, 0) + logic.clearing_amount(
                        values["hifp_pay_fen"],
                        values["critical_pay_fen"],
                        values["maf_pay_fen"],
                        values["acct_pay_fen"],
                    )
            if spent:
                await _count_in_pairs(repository, spent, self._usage)
        return recorded

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

    # --- monthly clearing ---

    async def ConfirmTreatmentPeriod(
        self, request: clearing_service_pb2.ConfirmTreatmentPeriodRequest, context: Context
    ) -> clearing_service_pb2.ClearingPeriod:
        period = _period(request.period)
        province = _province_acting(context, request.province)
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await repository.open_period(period)
            if row.state == _CLOSED:
                raise PeriodClosed(f"period {period} is closed", period=period)
            await repository.confirm_treatment(period, province, _now())
            return await _period_to_proto(repository, row)

    async def RunClearing(
        self, request: clearing_service_pb2.RunClearingRequest, context: Context
    ) -> clearing_service_pb2.ClearingRun:
        _national(context, "clearing is run by the national platform")
        if not request.request_id or len(request.request_id) > 64:
            raise PeriodInvalid("request_id is required, at most 64 characters")
        period = _period(request.period)
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await repository.open_period(period)
            if row.state == _CLOSED:
                raise PeriodClosed(f"period {period} is closed", period=period)
            pending = sorted(
                set(await repository.treatment_provinces(period))
                - set(await repository.confirmed_provinces(period))
            )
            if pending:
                raise TreatmentNotConfirmed(
                    f"treatment provinces {', '.join(pending)} have not confirmed {period}",
                    period=period,
                )
            row.run_request_id = request.request_id
            await _clear(repository, row)
            return await _run_to_proto(repository, row, None)

    async def ConfirmStatement(
        self, request: clearing_service_pb2.ConfirmStatementRequest, context: Context
    ) -> clearing_service_pb2.ClearingPeriod:
        period = _period(request.period)
        province = _province_acting(context, request.province)
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await _cleared_period(repository, period)
            if request.statement_hash != row.statement_hash:
                raise StatementChanged(
                    f"the statements of {period} changed since {request.statement_hash[:12]}; "
                    "review them again",
                    period=period,
                )
            statements = await repository.statements(period)
            own = [s for s in statements if s.insured_prov == province]
            if not own:
                raise StatementNotFound(f"{province} has no statement in {period}", period=period)
            now = _now()
            for statement in own:
                statement.confirmed_at = statement.confirmed_at or now
            if all(s.confirmed_at for s in statements):
                row.state = _CLOSED
                row.closed_at = now
                await session.flush()
                # Cleared money no longer uses the prepayments: their usage drops.
                years = await repository.take_off_closed(period) | {int(period[:4])}
                for year in sorted(years):
                    for prepayment in await repository.prepayments(year):
                        locked = await repository.prepayment(
                            prepayment.year,
                            prepayment.insured_prov,
                            prepayment.treatment_prov,
                            lock=True,
                        )
                        assert locked is not None
                        await _evaluate(repository, locked, now, self._usage)
            return await _period_to_proto(repository, row)

    async def DisputeSettlement(
        self, request: clearing_service_pb2.DisputeSettlementRequest, context: Context
    ) -> clearing_service_pb2.Dispute:
        period = _period(request.period)
        if not 1 <= len(request.reason) <= 200:
            raise PeriodInvalid("reason: 1 to 200 characters", field="reason")
        caller = caller_from_metadata(context.invocation_metadata())
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await _cleared_period(repository, period)
            entries = await repository.cleared_entries(request.setl_id, period)
            insured = entries[0].insured_prov if entries else ""
            if not entries or not _acts_for(caller, insured):
                raise SettlementNotInPeriod(
                    f"settlement {request.setl_id} was not cleared in {period} for the caller",
                    setlId=request.setl_id,
                )
            dispute = await repository.dispute(request.setl_id, lock=True)
            if dispute is not None and dispute.state == _OPEN_DISPUTE:
                raise DisputeExists(f"settlement {request.setl_id} is already disputed")
            if dispute is None:
                dispute = DisputeRow(setl_id=request.setl_id, raised_at=_now())
                session.add(dispute)
            dispute.period, dispute.insured_prov, dispute.reason = period, insured, request.reason
            dispute.state, dispute.raised_at, dispute.resolved_at = _OPEN_DISPUTE, _now(), None
            await session.flush()
            await repository.release_entries(request.setl_id, period)
            await _clear(repository, row)
            return _dispute_to_proto(dispute)

    async def ResolveDispute(
        self, request: clearing_service_pb2.ResolveDisputeRequest, context: Context
    ) -> clearing_service_pb2.Dispute:
        caller = caller_from_metadata(context.invocation_metadata())
        async with self._sessions.begin() as session:
            dispute = await ClearingRepository(session).dispute(request.setl_id, lock=True)
            allowed = dispute is not None and _acts_for(caller, dispute.insured_prov)
            if dispute is None or not allowed or dispute.state != _OPEN_DISPUTE:
                raise DisputeNotFound(f"no open dispute of settlement {request.setl_id}")
            dispute.state, dispute.resolved_at = _RESOLVED_DISPUTE, _now()
            return _dispute_to_proto(dispute)

    async def GetClearingRun(
        self, request: clearing_service_pb2.GetClearingRunRequest, context: Context
    ) -> clearing_service_pb2.ClearingRun:
        period = _period(request.period)
        party = _party(context, "clearing results")
        async with self._sessions() as session:
            repository = ClearingRepository(session)
            row = await repository.period(period)
            if row is None:
                row = PeriodRow(period=period, state=_OPEN, statement_hash="", run_request_id="")
            return await _run_to_proto(repository, row, party)

    # --- prepayments ---

    async def ComputePrepayments(
        self, request: clearing_service_pb2.ComputePrepaymentsRequest, context: Context
    ) -> clearing_service_pb2.GetPrepaymentsResponse:
        _national(context, "prepayments are computed by the national platform")
        year = _year(request.year)
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            for (insured, treatment), spend in (await repository.year_spend(year - 1)).items():
                row = await _prepayment_row(repository, year, insured, treatment)
                if not row.set_by_hand:
                    row.base_fen = logic.prepayment_from_spend(spend)
                await session.flush()
                await _evaluate(repository, row, _now(), self._usage)
            return await _prepayments_to_proto(repository, year, None)

    async def SetPrepayment(
        self, request: clearing_service_pb2.SetPrepaymentRequest, context: Context
    ) -> clearing_service_pb2.Prepayment:
        _national(context, "prepayments are set by the national platform")
        year = _year(request.year)
        insured, treatment = _pair(request.insured_prov, request.treatment_prov)
        if request.amount.amount_fen <= 0:
            raise PeriodInvalid("amount must be positive", field="amount")
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await _prepayment_row(repository, year, insured, treatment)
            row.base_fen, row.set_by_hand = request.amount.amount_fen, True
            await session.flush()
            return await _evaluate(repository, row, _now(), self._usage)

    async def TopUpPrepayment(
        self, request: clearing_service_pb2.TopUpPrepaymentRequest, context: Context
    ) -> clearing_service_pb2.Prepayment:
        if not request.request_id or len(request.request_id) > 64:
            raise PeriodInvalid("request_id is required, at most 64 characters")
        year = _year(request.year)
        insured, treatment = _pair(request.insured_prov, request.treatment_prov)
        caller = caller_from_metadata(context.invocation_metadata())
        if not _acts_for(caller, insured):
            raise PermissionDenied("only the insured province (or national) tops up")
        if request.amount.amount_fen <= 0:
            raise PeriodInvalid("amount must be positive", field="amount")
        async with self._sessions.begin() as session:
            repository = ClearingRepository(session)
            row = await repository.prepayment(year, insured, treatment, lock=True)
            if row is None:
                raise PrepaymentNotFound(f"no prepayment {insured} -> {treatment} in {year}")
            earlier = await repository.top_up(request.request_id)
            if earlier is None:
                session.add(
                    TopUpRow(
                        request_id=request.request_id,
                        year=year,
                        insured_prov=insured,
                        treatment_prov=treatment,
                        amount_fen=request.amount.amount_fen,
                        topped_up_at=_now(),
                    )
                )
                row.topped_up_fen += request.amount.amount_fen
                await session.flush()
            elif (earlier.year, earlier.insured_prov, earlier.treatment_prov) != (
                year,
                insured,
                treatment,
            ) or earlier.amount_fen != request.amount.amount_fen:
                raise TopUpConflict(f"request_id {request.request_id} was another top-up")
            return await _evaluate(repository, row, _now(), self._usage)

    async def GetPrepayments(
        self, request: clearing_service_pb2.GetPrepaymentsRequest, context: Context
    ) -> clearing_service_pb2.GetPrepaymentsResponse:
        party = _party(context, "prepayments")
        async with self._sessions() as session:
            return await _prepayments_to_proto(
                ClearingRepository(session), _year(request.year), party
            )

    async def GetPrepaymentWarnings(
        self, request: clearing_service_pb2.GetPrepaymentWarningsRequest, context: Context
    ) -> clearing_service_pb2.GetPrepaymentWarningsResponse:
        party = _party(context, "prepayments")
        async with self._sessions() as session:
            rows = await ClearingRepository(session).warnings(_year(request.year))
        return clearing_service_pb2.GetPrepaymentWarningsResponse(
            warnings=[
                clearing_service_pb2.PrepaymentWarning(
                    warning_id=w.warning_id,
                    year=w.year,
                    insured_prov=w.insured_prov,
                    treatment_prov=w.treatment_prov,
                    level=w.level,  # type: ignore[arg-type]
                    usage=w.usage,
                    top_up_requested=w.top_up_requested,
                    raise_time=timestamp(stored_utc(w.raised_at)),
                )
                for w in rows
                if party is None or party in (w.insured_prov[:2], w.treatment_prov[:2])
            ]
        )

    # --- statistics ---

    async def GetDailyStatistics(
        self, request: clearing_service_pb2.GetDailyStatisticsRequest, context: Context
    ) -> clearing_service_pb2.GetDailyStatisticsResponse:
        party = _party(context, "statistics")
        begin = date_from_proto(request.begin_date, "begin_date")
        end = date_from_proto(request.end_date, "end_date")
        if end < begin or (end - begin).days > logic.MAX_STATISTICS_DAYS:
            raise PeriodInvalid(
                f"end_date must be 0 to {logic.MAX_STATISTICS_DAYS} days after begin_date",
                field="end_date",
            )
        async with self._sessions() as session:
            groups = await ClearingRepository(session).daily_statistics(
                begin.isoformat(), end.isoformat(), party
            )
        return clearing_service_pb2.GetDailyStatisticsResponse(
            statistics=[
                clearing_service_pb2.DailyStatistic(
                    day=date_to_proto(dt.date.fromisoformat(day)),
                    insured_prov=insured,
                    treatment_prov=treatment,
                    med_type=med_type,
                    settlement_count=int(settled),
                    cancellation_count=int(cancelled),
                    medfee_sumamt=money(int(medfee)),
                    fund_pay_sumamt=money(int(fund)),
                    hifp_pay=money(int(hifp)),
                    critical_illness_pay=money(int(critical)),
                    maf_pay=money(int(maf)),
                    acct_pay=money(int(acct)),
                )
                for (
                    day,
                    insured,
                    treatment,
                    med_type,
                    settled,
                    cancelled,
                    medfee,
                    fund,
                    hifp,
                    critical,
                    maf,
                    acct,
                ) in groups
            ]
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


_OPEN, _CLEARED, _CLOSED = 1, 2, 3
_OPEN_DISPUTE, _RESOLVED_DISPUTE = 1, 2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _period(period: str) -> str:
    problem = logic.period_problem(period)
    if problem:
        raise PeriodInvalid(problem, field="period")
    return period


def _province_acting(context: Context, province: str) -> str:
    """The province a confirmation is for: the caller's own, or any for national."""
    if len(province) != 6 or not province.endswith("0000") or not province.isdigit():
        raise PeriodInvalid("province must be a province code such as 110000", field="province")
    if not _acts_for(caller_from_metadata(context.invocation_metadata()), province):
        raise PermissionDenied(f"a province confirms only for itself, not for {province}")
    return province


async def _cleared_period(repository: ClearingRepository, period: str) -> PeriodRow:
    row = await repository.period(period, lock=True)
    if row is None or row.state == _OPEN:
        raise PeriodNotCleared(f"period {period} has not been cleared", period=period)
    if row.state == _CLOSED:
        raise PeriodClosed(f"period {period} is closed", period=period)
    return row


async def _clear(repository: ClearingRepository, row: PeriodRow) -> None:
    """Assign the clearable entries to the period and compute its statements; a statement whose
    amounts did not change keeps its confirmation."""
    await repository.assign_entries(row.period)
    pairs = await repository.pair_totals(row.period)
    before = {
        (s.insured_prov, s.treatment_prov): s for s in await repository.statements(row.period)
    }
    rows = []
    for pair in pairs:
        earlier = before.get((pair.insured_prov, pair.treatment_prov))
        same = earlier is not None and (
            earlier.entry_count,
            earlier.medfee_sumamt_fen,
            earlier.clearing_fen,
        ) == (pair.entry_count, pair.medfee, pair.clearing)
        rows.append(
            StatementRow(
                period=row.period,
                insured_prov=pair.insured_prov,
                treatment_prov=pair.treatment_prov,
                entry_count=pair.entry_count,
                medfee_sumamt_fen=pair.medfee,
                hifp_pay_fen=pair.hifp,
                critical_pay_fen=pair.critical,
                maf_pay_fen=pair.maf,
                acct_pay_fen=pair.acct,
                clearing_fen=pair.clearing,
                confirmed_at=earlier.confirmed_at if same and earlier else None,
            )
        )
    await repository.replace_statements(row.period, rows)
    row.statement_hash = logic.statement_hash(row.period, pairs)
    now = _now()
    row.cleared_at = now
    row.state = _CLEARED if rows else _CLOSED
    if not rows:
        row.closed_at = now


async def _period_to_proto(
    repository: ClearingRepository, row: PeriodRow
) -> clearing_service_pb2.ClearingPeriod:
    confirmed = await repository.confirmed_provinces(row.period)
    involved = await repository.treatment_provinces(row.period)
    return clearing_service_pb2.ClearingPeriod(
        period=row.period,
        state=row.state,  # type: ignore[arg-type]
        confirmed_treatment_provinces=confirmed,
        pending_treatment_provinces=sorted(set(involved) - set(confirmed)),
        statement_hash=row.statement_hash,
    )


async def _run_to_proto(
    repository: ClearingRepository, row: PeriodRow, party: str | None
) -> clearing_service_pb2.ClearingRun:
    """The run as `party` (a two-digit province prefix; None = national) may see it."""
    statements = await repository.statements(row.period) if row.state != _OPEN else []
    pairs = [
        logic.PairTotals(
            s.insured_prov,
            s.treatment_prov,
            s.entry_count,
            s.medfee_sumamt_fen,
            s.hifp_pay_fen,
            s.critical_pay_fen,
            s.maf_pay_fen,
            s.acct_pay_fen,
        )
        for s in statements
    ]
    positions = logic.net_positions(pairs)
    visible = [
        s
        for s in statements
        if party is None or party in (s.insured_prov[:2], s.treatment_prov[:2])
    ]
    shown_positions = [p for p in positions if party is None or p.province[:2] == party]
    transfers = [t for t in logic.transfers(positions) if party is None or t[0][:2] == party]
    return clearing_service_pb2.ClearingRun(
        period=await _period_to_proto(repository, row),
        statements=[
            clearing_service_pb2.Statement(
                period=s.period,
                insured_prov=s.insured_prov,
                treatment_prov=s.treatment_prov,
                entry_count=s.entry_count,
                medfee_sumamt=money(s.medfee_sumamt_fen),
                hifp_pay=money(s.hifp_pay_fen),
                critical_illness_pay=money(s.critical_pay_fen),
                maf_pay=money(s.maf_pay_fen),
                acct_pay=money(s.acct_pay_fen),
                clearing_amount=money(s.clearing_fen),
                confirmed=s.confirmed_at is not None,
            )
            for s in visible
        ],
        positions=[
            clearing_service_pb2.NetPosition(
                province=p.province,
                receivable=money(p.receivable),
                payable=money(p.payable),
                net=money(p.net),
            )
            for p in shown_positions
        ],
        transfers=[
            clearing_service_pb2.Transfer(province=province, to_central=pays, amount=money(amount))
            for province, pays, amount in transfers
        ],
    )


def _dispute_to_proto(row: DisputeRow) -> clearing_service_pb2.Dispute:
    return clearing_service_pb2.Dispute(
        setl_id=row.setl_id,
        period=row.period,
        insured_prov=row.insured_prov,
        reason=row.reason,
        state=row.state,  # type: ignore[arg-type]
    )


def _national(context: Context, message: str) -> None:
    if not caller_from_metadata(context.invocation_metadata()).is_national:
        raise PermissionDenied(message)


def _party(context: Context, what: str) -> str | None:
    """A province's two-digit prefix, or None for national (which sees everything)."""
    caller = caller_from_metadata(context.invocation_metadata())
    if caller.kind not in ("province", "national"):
        raise PermissionDenied(f"{what} are for provinces and the national platform")
    return None if caller.is_national else caller.province_prefix


def _acts_for(caller: Caller, province: str) -> bool:
    """National acts for every province; a province only for itself."""
    return caller.is_national or caller.province_prefix == province[:2]


def _year(year: int) -> int:
    if not 2000 <= year <= 2100:
        raise PeriodInvalid("year must be between 2000 and 2100", field="year")
    return year


def _entry_values(event: ledger_pb2.LedgerEvent) -> dict[str, Any]:
    """The ledger row of an event, checked; LedgerEventInvalid names what is wrong."""
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
        raise LedgerEventInvalid(f"event {event.event_id}: {problem}", eventId=event.event_id)
    when = event.event_time.ToDatetime(dt.UTC)
    return {
        "event_id": event.event_id,
        "kind": event.kind,
        "setl_id": event.setl_id,
        "mdtrt_id": event.mdtrt_id,
        "psn_no": event.psn_no,
        "fixmedins_code": event.fixmedins_code,
        "treatment_admdvs": event.treatment_admdvs,
        "treatment_prov": province_of(event.treatment_admdvs),
        "insuplc_admdvs": event.insuplc_admdvs,
        "insured_prov": province_of(event.insuplc_admdvs),
        "insutype": event.insutype,
        "med_type": event.med_type,
        "event_time": when,
        "period": logic.period_of(when),
        "event_day": logic.day_of(when),
        "medfee_sumamt_fen": event.medfee_sumamt.amount_fen,
        "hifp_pay_fen": event.hifp_pay.amount_fen,
        "critical_pay_fen": event.critical_illness_pay.amount_fen,
        "maf_pay_fen": event.maf_pay.amount_fen,
        "acct_pay_fen": event.acct_pay.amount_fen,
        "fund_pay_sumamt_fen": event.fund_pay_sumamt.amount_fen,
        "psn_cash_pay_fen": event.psn_cash_pay.amount_fen,
        "event_hash": fingerprint(event),
        "recorded_at": dt.datetime.now(dt.UTC),
        "cleared_period": None,
    }


def _pair(insured: str, treatment: str) -> tuple[str, str]:
    for code in (insured, treatment):
        if len(code) != 6 or not code.isdigit() or not code.endswith("0000"):
            raise PeriodInvalid(f"{code!r} is not a province code such as 110000")
    if insured == treatment:
        raise PeriodInvalid("a prepayment is between two different provinces")
    return insured, treatment


async def _prepayment_row(
    repository: ClearingRepository, year: int, insured: str, treatment: str
) -> PrepaymentRow:
    """The pair's row, created (empty, NORMAL) when missing, locked."""
    await insert_missing(
        repository.session,
        PrepaymentRow,
        {
            "year": year,
            "insured_prov": insured,
            "treatment_prov": treatment,
            "base_fen": 0,
            "topped_up_fen": 0,
            "set_by_hand": False,
            "level": logic.NORMAL,
            "overdrawn": False,
        },
    )
    row = await repository.prepayment(year, insured, treatment, lock=True)
    assert row is not None
    return row


async def _count_in_pairs(
    repository: ClearingRepository, amounts: dict[Pair, int], usage_gauge: Gauge
) -> None:
    """Count new entries' amounts in their pairs' uncleared spend, then evaluate the usage of
    each pair's prepayment, if it has one (a statement for all pairs each, in key order)."""
    totals = await repository.add_spends(amounts)
    now = _now()
    for row in await repository.locked_prepayments(list(amounts)):
        spend = totals[(row.year, row.insured_prov, row.treatment_prov)]
        await _evaluate(repository, row, now, usage_gauge, spend)


async def _evaluate(
    repository: ClearingRepository,
    row: PrepaymentRow,
    now: dt.datetime,
    usage_gauge: Gauge,
    spend: int | None = None,
) -> clearing_service_pb2.Prepayment:
    """Bring the pair's level up to date, raising one warning per threshold crossed upwards.
    `spend` is the pair's uncleared spend when the caller has just counted it."""
    if spend is None:
        spend = await repository.uncleared_spend(row.year, row.insured_prov, row.treatment_prov)
    amount = row.base_fen + row.topped_up_fen
    level = logic.usage_level(spend, amount)
    usage = logic.usage_text(spend, amount)
    for crossed in logic.crossed(row.level, level):
        repository.session.add(
            PrepaymentWarningRow(
                year=row.year,
                insured_prov=row.insured_prov,
                treatment_prov=row.treatment_prov,
                level=crossed,
                usage=usage,
                top_up_requested=crossed == logic.RED,
                raised_at=now,
            )
        )
        _LOGGER.warning(
            "prepayment %s -> %s %d at %s of %s: %s",
            row.insured_prov,
            row.treatment_prov,
            row.year,
            usage,
            yuan_text(amount),
            "red, emergency top-up requested" if crossed == logic.RED else "yellow",
        )
    row.level = level
    row.overdrawn = spend > amount
    usage_gauge.labels(str(row.year), row.insured_prov, row.treatment_prov).set(float(usage))
    return _prepayment_to_proto(row, spend)


def _prepayment_to_proto(row: PrepaymentRow, spend: int) -> clearing_service_pb2.Prepayment:
    amount = row.base_fen + row.topped_up_fen
    return clearing_service_pb2.Prepayment(
        year=row.year,
        insured_prov=row.insured_prov,
        treatment_prov=row.treatment_prov,
        amount=money(amount),
        topped_up=money(row.topped_up_fen),
        set_by_hand=row.set_by_hand,
        uncleared_spend=money(spend),
        usage=logic.usage_text(spend, amount),
        level=row.level,  # type: ignore[arg-type]
        overdrawn=spend > amount,
        overdrawn_reason=(
            f"spend exceeds the prepayment by {yuan_text(spend - amount)}" if spend > amount else ""
        ),
    )


async def _prepayments_to_proto(
    repository: ClearingRepository, year: int, party: str | None
) -> clearing_service_pb2.GetPrepaymentsResponse:
    shown = []
    for row in await repository.prepayments(year):
        if party is None or party in (row.insured_prov[:2], row.treatment_prov[:2]):
            spend = await repository.uncleared_spend(year, row.insured_prov, row.treatment_prov)
            shown.append(_prepayment_to_proto(row, spend))
    return clearing_service_pb2.GetPrepaymentsResponse(prepayments=shown)
