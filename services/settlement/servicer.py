"""SettlementService over gRPC: proto <-> domain, the upstream checks, one transaction per write.

Upstream calls (identity, filing, catalogue) happen before a transaction opens, never while a row
is locked. Every money-moving write locks the visit first and then the person's accumulators, in
that order, so concurrent settlements of one person queue instead of deadlocking.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from medsettle.clearing.v1 import ledger_pb2
from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)
from opentelemetry import propagate
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.awaiting import both
from services.common.callers import Caller, caller_from_metadata
from services.common.coverage import filing_covers
from services.common.driver import DriverPool
from services.common.errors import InvalidArgument
from services.common.fingerprint import fingerprint, request_fingerprint
from services.common.paging import decode_page_token, encode_page_token, page_size
from services.common.values import (
    SHANGHAI,
    date_from_proto,
    date_to_proto,
    money,
    stored_utc,
    timestamp,
    today_in_china,
    yuan_text,
)
from services.settlement import logic, wire
from services.settlement.errors import (
    AccumulatorsNotFound,
    CallerNotAllowed,
    FeeLineConflict,
    FeeLineInvalid,
    FeeLineNotFound,
    FilingRequired,
    InstitutionNotOpen,
    NoFees,
    NotCrossProvince,
    PolicyNotFound,
    RequestIdConflict,
    SettlementCancelled,
    SettlementNotFound,
    TotalMismatch,
    VisitClosed,
    VisitExists,
    VisitInvalid,
    VisitNotFound,
    VisitPersonMismatch,
    VisitSettled,
)
from services.settlement.filing_ends import FilingEnds
from services.settlement.models import (
    CANCELLED,
    LIVE,
    OutboxRow,
    PersonYearRow,
    PolicyRow,
    PolicyYearRow,
    SettlementRow,
    VisitRow,
)
from services.settlement.repository import SettlementRepository, StoredLine
from services.settlement.upstreams import EffectiveFiling, Upstreams

Context = grpc.aio.ServicerContext[Any, Any]
_MAX_LINES = 1000
_MAX_POLICIES = 10_000
_MAX_DIAGNOSES = 50
_ALL_LINES = ("", "0000")
_OPEN = settlement_pb2.VISIT_STATUS_OPEN
_DISCHARGED = settlement_pb2.VISIT_STATUS_DISCHARGED
_VISIT_CANCELLED = settlement_pb2.VISIT_STATUS_CANCELLED


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _hospital(context: Context) -> Caller:
    """Hospital calls come through the gateway, which authenticated the institution."""
    caller = caller_from_metadata(context.invocation_metadata())
    if caller.kind not in ("gateway", "national"):
        raise CallerNotAllowed(
            "hospital transactions are accepted from the gateway or the national platform"
        )
    return caller


def _request_id(value: str) -> str:
    if not value or len(value) > 64:
        raise InvalidArgument("request_id is required, at most 64 characters", field="request_id")
    return value


def visit_to_proto(row: VisitRow) -> settlement_pb2.Visit:
    """The wire form of a visit."""
    diagnoses = settlement_service_pb2.AdmitVisitRequest.FromString(row.diagnoses).diagnoses
    visit = settlement_pb2.Visit(
        mdtrt_id=row.mdtrt_id,
        fixmedins_code=row.fixmedins_code,
        ipt_otp_no=row.ipt_otp_no,
        psn_no=row.psn_no,
        insuplc_admdvs=row.insuplc_admdvs,
        treatment_admdvs=row.treatment_admdvs,
        insutype=row.insutype,
        psn_type=row.psn_type,
        med_type=row.med_type,
        begin_date=date_to_proto(row.begin_date),
        emergency=row.emergency,
        diagnoses=diagnoses,
        status=row.status,  # type: ignore[arg-type]
        filing_id=row.filing_id,
        institution_level=row.institution_level,
        setl_id=row.setl_id or "",
        create_time=timestamp(stored_utc(row.created_at)),
    )
    if row.end_date is not None:
        visit.end_date.CopyFrom(date_to_proto(row.end_date))
    return visit


def _check_admission(request: settlement_service_pb2.AdmitVisitRequest) -> dt.date:
    """Field checks of an admission; returns its date."""
    for name, limit in (("fixmedins_code", 30), ("ipt_otp_no", 30)):
        value = getattr(request, name)
        if not value or len(value) > limit:
            raise VisitInvalid(f"{name} is required, at most {limit} characters", field=name)
    _check_med_type(request.med_type)
    if not request.credential_no:
        raise VisitInvalid("credential_no (mdtrt_cert_no) is required", field="credential_no")
    _check_diagnoses(request.diagnoses)
    begin = date_from_proto(request.begin_date, "begin_date")
    if begin > today_in_china():
        raise VisitInvalid("begin_date is in the future", field="begin_date")
    return begin


def _check_med_type(med_type: str) -> None:
    if med_type not in logic.MED_TYPES:
        raise VisitInvalid(
            f"med_type must be one of {', '.join(logic.MED_TYPES)}", field="med_type"
        )


def _check_diagnoses(diagnoses: Sequence[settlement_pb2.Diagnosis]) -> None:
    if len(diagnoses) > _MAX_DIAGNOSES:
        raise VisitInvalid(f"at most {_MAX_DIAGNOSES} diagnoses", field="diagnoses")
    for index, diagnosis in enumerate(diagnoses):
        if not diagnosis.diag_code or len(diagnosis.diag_code) > 20:
            raise VisitInvalid(f"diagnoses[{index}].diag_code: 1 to 20 characters")
        if len(diagnosis.diag_name) > 100:
            raise VisitInvalid(f"diagnoses[{index}].diag_name: at most 100 characters")


def _check_fee_lines(lines: Sequence[settlement_pb2.FeeLine]) -> None:
    if not lines or len(lines) > _MAX_LINES:
        raise FeeLineInvalid(f"1 to {_MAX_LINES} lines per upload", field="lines")
    seen: set[str] = set()
    for index, line in enumerate(lines):
        where = f"lines[{index}]"
        if not line.feedetl_sn or len(line.feedetl_sn) > 30:
            raise FeeLineInvalid(f"{where}.feedetl_sn: 1 to 30 characters")
        if line.feedetl_sn in _ALL_LINES:
            raise FeeLineInvalid(f"{where}.feedetl_sn: {line.feedetl_sn!r} is reserved")
        if line.feedetl_sn in seen:
            raise FeeLineInvalid(f"{where}.feedetl_sn {line.feedetl_sn} appears twice")
        seen.add(line.feedetl_sn)
        if len(line.med_list_codg) > 50 or len(line.medins_list_codg) > 150:
            raise FeeLineInvalid(f"{where}: med_list_codg ≤ 50, medins_list_codg ≤ 150 characters")
        if not line.med_list_codg and not line.medins_list_codg:
            raise FeeLineInvalid(f"{where}: med_list_codg or medins_list_codg is required")
        if line.amount.amount_fen < 0:
            raise FeeLineInvalid(
                f"{where}.amount is negative: refunds are made by cancelling the line (2302)"
            )
        date_from_proto(line.fee_date, f"{where}.fee_date")


# How long a chosen policy is used without reading it again (see _PolicyCache).
POLICY_CACHE_TTL_S = 30.0


@dataclass(frozen=True)
class _ChosenPolicy:
    """The policy version a visit settles under."""

    policy_id: str
    version: int
    policy: logic.Policy


class _PolicyCache:
    """Chosen policies by (area, insutype, year, med_type, psn_type), kept POLICY_CACHE_TTL_S.

    Every settlement and admission needs its policy, and policies change a few times a year: an
    upload through this process clears the cache at once, one through another replica is seen
    here within the TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._chosen: dict[tuple[str, str, int, str, str], tuple[float, _ChosenPolicy]] = {}

    def get(self, key: tuple[str, str, int, str, str]) -> _ChosenPolicy | None:
        found = self._chosen.get(key)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    def put(self, key: tuple[str, str, int, str, str], chosen: _ChosenPolicy) -> None:
        self._chosen[key] = (self._clock() + POLICY_CACHE_TTL_S, chosen)

    def clear(self) -> None:
        self._chosen.clear()


class _Computed:
    """A settlement computed inside an open transaction, ready to be committed or dropped."""

    def __init__(
        self,
        settlement: settlement_pb2.Settlement,
        explanation: settlement_pb2.Explanation,
        result: logic.Result,
        policy: _ChosenPolicy,
        accumulators: list[tuple[PersonYearRow | PolicyYearRow, dict[str, int]]],
    ) -> None:
        self.settlement = settlement
        self.explanation = explanation
        self.result = result
        self.policy = policy
        self.accumulators = accumulators
        """The locked accumulator rows and their values after this settlement."""


class SettlementServicer(settlement_service_pb2_grpc.SettlementServiceServicer):
    """Implements medsettle.settlement.v1.SettlementService."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        upstreams: Upstreams,
        on_ledger_event: Callable[[settlement_pb2.Settlement], None] = lambda _: None,
        autocommit: async_sessionmaker[AsyncSession] | None = None,
        filing_ends: FilingEnds | None = None,
        driver: DriverPool | None = None,
    ) -> None:
        self._sessions = sessions
        # Lookups and one-statement writes (services.common.db.make_autocommit_session_factory).
        self._autocommit = autocommit or sessions
        # An admission's and an upload's lookups on asyncpg directly (services.common.driver).
        self._driver = driver
        self._upstreams = upstreams
        self._on_ledger_event = on_ledger_event
        self._filing_ends = filing_ends
        self._policies = _PolicyCache()

    # --- policies ---

    async def UpsertPolicies(
        self, request: settlement_service_pb2.UpsertPoliciesRequest, context: Context
    ) -> settlement_service_pb2.UpsertPoliciesResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        if len(request.policies) > _MAX_POLICIES:
            raise InvalidArgument(f"at most {_MAX_POLICIES} policies per call")
        bodies: dict[str, tuple[settlement_pb2.Policy, bytes]] = {}
        for message in request.policies:
            wire.policy_from_proto(message)
            key = wire.policy_key(message)
            caller.require_owns(key.insuplc_admdvs, "policy")
            if key.policy_id in bodies:
                raise InvalidArgument(f"policy {key.policy_id} appears twice in the request")
            bodies[key.policy_id] = (message, wire.policy_body(message))
        now = _now()
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            current = await repository.current_policies(list(bodies))
            versions = []
            for policy_id, (message, body) in bodies.items():
                stored = current.get(policy_id)
                if stored is not None and stored.body == body:
                    continue
                key = wire.policy_key(message)
                versions.append(
                    PolicyRow(
                        policy_id=policy_id,
                        version=(stored.version if stored else 0) + 1,
                        insuplc_admdvs=key.insuplc_admdvs,
                        insutype=key.insutype,
                        year=key.year,
                        med_type=key.med_type,
                        psn_type=key.psn_type,
                        body=body,
                        uploaded_at=now,
                        current=True,
                    )
                )
            await repository.add_policy_versions(versions)
        self._policies.clear()
        written = len(versions)
        return settlement_service_pb2.UpsertPoliciesResponse(
            written_count=written, unchanged_count=len(bodies) - written
        )

    async def ListPolicies(
        self, request: settlement_service_pb2.ListPoliciesRequest, context: Context
    ) -> settlement_service_pb2.ListPoliciesResponse:
        limit = page_size(request.page_size, 100, 1000)
        after = decode_page_token(request.page_token)
        async with self._autocommit() as session:
            rows = await SettlementRepository(session).policy_page(
                request.insuplc_admdvs, after, limit + 1
            )
        reply = settlement_service_pb2.ListPoliciesResponse(
            policies=[_policy_to_proto(row) for row in rows[:limit]]
        )
        if len(rows) > limit:
            reply.next_page_token = encode_page_token(rows[limit - 1].policy_id)
        return reply

    # --- visits ---

    async def AdmitVisit(
        self, request: settlement_service_pb2.AdmitVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        request_id = _request_id(request.request_id)
        begin = _check_admission(request)
        request_hash = request_fingerprint(request)
        async with self._autocommit() as session:
            earlier = await SettlementRepository(session, self._driver).visit_by_request(request_id)
        if earlier is not None:
            return _replayed_visit(earlier, request_hash, request_id)

        # Asked side by side; the credential's refusal, if any, is the one reported.
        person, institution = await both(
            self._upstreams.insured_person(
                request.credential_type, request.credential_no, request.card_sn, request.insutype
            ),
            self._upstreams.institution(request.fixmedins_code),
        )
        if request.psn_no and request.psn_no != person.psn_no:
            raise VisitPersonMismatch(
                f"the credential is not of person {request.psn_no}", psnNo=request.psn_no
            )
        if person.insuplc_admdvs[:2] == institution.admdvs[:2]:
            raise NotCrossProvince(
                f"the person is insured in {person.insuplc_admdvs}, in the province of "
                f"{institution.fixmedins_code}: settle locally, not cross-province",
                insuplcAdmdvs=person.insuplc_admdvs,
            )
        if request.med_type not in institution.open_for:
            raise InstitutionNotOpen(
                f"{institution.fixmedins_code} is not open for cross-province "
                f"{logic.MED_TYPES[request.med_type]} settlement",
                medType=request.med_type,
            )
        filing = await self._admission_filing(person.psn_no, institution.admdvs, begin)
        if filing is None and not request.emergency:
            raise FilingRequired(
                f"person {person.psn_no} has no filing covering {institution.admdvs} on "
                f"{begin.isoformat()}; file first, or admit as an emergency (er_flag 1)",
                psnNo=person.psn_no,
            )
        now = _now()
        row = VisitRow(
            mdtrt_id=logic.platform_id(institution.admdvs, now.astimezone(SHANGHAI)),
            fixmedins_code=institution.fixmedins_code,
            ipt_otp_no=request.ipt_otp_no,
            psn_no=person.psn_no,
            insuplc_admdvs=person.insuplc_admdvs,
            treatment_admdvs=institution.admdvs,
            institution_level=institution.level,
            insutype=person.insutype,
            psn_type=person.psn_type,
            idet_types=";".join(person.idet_types),
            balc_fen=person.balc_fen,
            med_type=request.med_type,
            begin_date=begin,
            end_date=None,
            emergency=request.emergency,
            diagnoses=settlement_service_pb2.AdmitVisitRequest(
                diagnoses=request.diagnoses
            ).SerializeToString(),
            status=_OPEN,
            filing_id=filing.filing_id if filing else "",
            filing_category=filing.category if filing else "",
            setl_id=None,
            created_at=now,
            request_id=request_id,
            request_hash=request_hash,
        )
        # One statement, no transaction around it: the unique indexes on request_id and on the
        # open visit's number refuse a second admission (BEGIN, a read of the open visit and
        # COMMIT were three round trips more).
        try:
            async with self._autocommit.begin() as session:
                repository = SettlementRepository(session)
                await self._policy_for(repository, row)
                await repository.add_visit(row)
        except IntegrityError:
            async with self._autocommit() as session:
                repository = SettlementRepository(session)
                earlier = await repository.visit_by_request(request_id)
                numbered = await repository.open_visit_numbered(row.fixmedins_code, row.ipt_otp_no)
            if earlier is not None:
                return _replayed_visit(earlier, request_hash, request_id)
            if numbered is None:
                raise
            raise VisitExists(
                f"{row.fixmedins_code} already has an open visit numbered {row.ipt_otp_no}",
                iptOtpNo=row.ipt_otp_no,
            ) from None
        return visit_to_proto(row)

    async def GetVisit(
        self, request: settlement_service_pb2.GetVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        async with self._autocommit() as session:
            row = await _visit(SettlementRepository(session), request.mdtrt_id, request)
        return visit_to_proto(row)

    async def UpdateVisit(
        self, request: settlement_service_pb2.UpdateVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        _check_med_type(request.med_type)
        _check_diagnoses(request.diagnoses)
        async with self._autocommit() as session:
            visit = await _visit(SettlementRepository(session), request.mdtrt_id, request)
        if (request.med_type == logic.INPATIENT) != (visit.med_type == logic.INPATIENT):
            raise VisitInvalid(
                "an outpatient visit stays outpatient and an inpatient one inpatient; "
                "register the other kind as a new visit",
                field="med_type",
            )
        if request.med_type != visit.med_type:
            institution = await self._upstreams.institution(visit.fixmedins_code)
            if request.med_type not in institution.open_for:
                raise InstitutionNotOpen(
                    f"{institution.fixmedins_code} is not open for cross-province "
                    f"{logic.MED_TYPES[request.med_type]} settlement",
                    medType=request.med_type,
                )
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            row = await _visit(repository, request.mdtrt_id, request, lock=True)
            _require_open_unsettled(row)
            if row.med_type != request.med_type and await repository.stored_lines(row.mdtrt_id):
                raise VisitInvalid(
                    f"visit {row.mdtrt_id} has fee lines classified as med_type {row.med_type}; "
                    "cancel them before changing the medical type",
                    field="med_type",
                )
            row.med_type = request.med_type
            await self._policy_for(repository, row)
            row.diagnoses = settlement_service_pb2.AdmitVisitRequest(
                diagnoses=request.diagnoses
            ).SerializeToString()
            return visit_to_proto(row)

    async def DischargeVisit(
        self, request: settlement_service_pb2.DischargeVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        end = date_from_proto(request.end_date, "end_date")
        async with self._sessions.begin() as session:
            row = await _visit(SettlementRepository(session), request.mdtrt_id, request, lock=True)
            if row.status == _VISIT_CANCELLED:
                raise VisitClosed(f"visit {row.mdtrt_id} was cancelled")
            if row.med_type != logic.INPATIENT:
                raise VisitInvalid("only inpatient visits (med_type 21) are discharged")
            if end < row.begin_date:
                raise VisitInvalid("end_date is before the admission date", field="end_date")
            row.end_date = end
            row.status = _DISCHARGED
            return visit_to_proto(row)

    async def ReopenVisit(
        self, request: settlement_service_pb2.ReopenVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        async with self._sessions.begin() as session:
            row = await _visit(SettlementRepository(session), request.mdtrt_id, request, lock=True)
            _require_open_unsettled(row)
            row.end_date = None
            row.status = _OPEN
            return visit_to_proto(row)

    async def CancelVisit(
        self, request: settlement_service_pb2.CancelVisitRequest, context: Context
    ) -> settlement_pb2.Visit:
        _hospital(context)
        _request_id(request.request_id)
        async with self._sessions.begin() as session:
            row = await _visit(SettlementRepository(session), request.mdtrt_id, request, lock=True)
            if row.setl_id:
                raise VisitSettled(
                    f"visit {row.mdtrt_id} has live settlement {row.setl_id}; cancel it first",
                    setlId=row.setl_id,
                )
            row.status = _VISIT_CANCELLED
            return visit_to_proto(row)

    # --- fee lines ---

    async def UploadFees(
        self, request: settlement_service_pb2.UploadFeesRequest, context: Context
    ) -> settlement_service_pb2.UploadFeesResponse:
        _hospital(context)
        request_id = _request_id(request.request_id)
        _check_fee_lines(request.lines)
        hashes = {line.feedetl_sn: fingerprint(line) for line in request.lines}
        async with self._autocommit() as session:
            found, stored = await SettlementRepository(
                session, self._driver
            ).visit_and_stored_lines(request.mdtrt_id)
        visit = _owned_visit(found, request.mdtrt_id, request)
        _require_open_unsettled(visit)
        _refuse_changed_lines(stored, hashes)
        new_lines = [line for line in request.lines if line.feedetl_sn not in stored]
        classified: dict[str, settlement_pb2.ClassifiedFee] = {}
        if new_lines:
            reply = await self._upstreams.classify(
                visit.fixmedins_code, visit.med_type, [wire.catalogue_line(x) for x in new_lines]
            )
            for answer in reply.lines:
                classified[answer.feedetl_sn] = wire.classified_fee(answer, reply.catalogue_version)
        now = _now()
        async with self._upload_transaction() as repository:
            visit = await _visit(repository, request.mdtrt_id, request, lock=True)
            _require_open_unsettled(visit)
            stored = await repository.stored_lines(visit.mdtrt_id)
            _refuse_changed_lines(stored, hashes)
            fresh = []
            for line in new_lines:
                if line.feedetl_sn in stored:
                    continue  # a concurrent identical upload stored it first
                fee = classified[line.feedetl_sn]
                fresh.append(
                    {
                        "mdtrt_id": visit.mdtrt_id,
                        "feedetl_sn": line.feedetl_sn,
                        "status": LIVE,
                        "content_hash": hashes[line.feedetl_sn],
                        "classified": fee.SerializeToString(),
                        "amount_fen": fee.amount.amount_fen,
                        "fulamt_ownpay_fen": fee.fulamt_ownpay_amt.amount_fen,
                        "overlmt_fen": fee.overlmt_amt.amount_fen,
                        "preselfpay_fen": fee.preselfpay_amt.amount_fen,
                        "inscp_fen": fee.inscp_scp_amt.amount_fen,
                        "catalogue_version": fee.catalogue_version,
                        "request_id": request_id,
                        "created_at": now,
                        "cancelled_at": None,
                    }
                )
            # One multi-row INSERT instead of the unit of work flushing each line object.
            await repository.add_fee_lines(fresh)
        for sn, row in stored.items():
            classified.setdefault(sn, settlement_pb2.ClassifiedFee.FromString(row.classified))
        return settlement_service_pb2.UploadFeesResponse(
            lines=[classified[line.feedetl_sn] for line in request.lines]
        )

    @contextlib.asynccontextmanager
    async def _upload_transaction(self) -> AsyncIterator[SettlementRepository]:
        """The transaction that stores an upload's new lines: on the driver where there is one
        (it locks the visit and reads, changing nothing it reads), else a session's."""
        if self._driver is None:
            async with self._sessions.begin() as session:
                yield SettlementRepository(session)
            return
        # The session is never used: every statement of the upload runs on the driver.
        async with self._driver.transaction() as transaction, self._autocommit() as session:
            yield SettlementRepository(session, transaction)

    async def CancelFees(
        self, request: settlement_service_pb2.CancelFeesRequest, context: Context
    ) -> settlement_service_pb2.CancelFeesResponse:
        _hospital(context)
        _request_id(request.request_id)
        everything = request.feedetl_sn in _ALL_LINES
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            visit = await _visit(repository, request.mdtrt_id, request, lock=True)
            _require_open_unsettled(visit)
            count = await repository.cancel_lines(
                visit.mdtrt_id, "" if everything else request.feedetl_sn, _now()
            )
        if count == 0 and not everything:
            raise FeeLineNotFound(
                f"visit {request.mdtrt_id} has no live line {request.feedetl_sn}",
                feedetlSn=request.feedetl_sn,
            )
        return settlement_service_pb2.CancelFeesResponse(cancelled_count=count)

    # --- settlement ---

    async def PreSettle(
        self, request: settlement_service_pb2.PreSettleRequest, context: Context
    ) -> settlement_pb2.Settlement:
        _hospital(context)
        # Before the read, as in _settle_on_admission_filing.
        stream_current = self._filing_stream_current()
        async with self._autocommit() as session:
            found, filing_ended = await SettlementRepository(session).visit_and_filing_ended(
                request.mdtrt_id
            )
        filing = await self._filing_for(
            _owned_visit(found, request.mdtrt_id, request),
            ended=filing_ended if stream_current else None,
        )
        async with self._sessions() as session, session.begin() as transaction:
            repository = SettlementRepository(session)
            visit = await _visit(repository, request.mdtrt_id, request, lock=True)
            computed = await self._compute(repository, visit, filing, request, _now())
            # The accumulator rows compute() may have created are not kept.
            await transaction.rollback()
        return computed.settlement

    async def SettleVisit(
        self, request: settlement_service_pb2.SettleVisitRequest, context: Context
    ) -> settlement_pb2.Settlement:
        _hospital(context)
        request_id = _request_id(request.request_id)
        request_hash = request_fingerprint(request)
        try:
            settlement = await self._settle_on_admission_filing(request, request_id, request_hash)
            if settlement is None:
                settlement = await self._settle_asking_filing(request, request_id, request_hash)
        except IntegrityError:
            async with self._sessions() as session:
                earlier = await SettlementRepository(session).settlement_by_request(request_id)
            if earlier is None:
                raise
            return _replayed_settlement(earlier, request_hash, request_id)
        self._on_ledger_event(settlement)
        return settlement

    async def _settle_on_admission_filing(
        self, request: Any, request_id: str, request_hash: str
    ) -> settlement_pb2.Settlement | None:
        """Settle in one transaction whose first statement locks the visit, finds a replay and
        says whether the admission filing has ended; None when filing must be asked instead
        (the stream is not current, or the admission filing cannot be used), which is done
        without holding the lock. A replay's settlement is returned as it was."""
        # Whether filing's stream is current is asked first, so that the statement sees every
        # end recorded by then.
        if not self._filing_stream_current():
            return None
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            earlier, found, ended = await repository.locked_visit_for_settling(
                request_id, request.mdtrt_id
            )
            if earlier is None and found is not None and found.setl_id:
                # Settled while this waited for the lock, perhaps by this same request: the
                # statement read the settlements as they were before it waited.
                earlier = await repository.settlement_by_request(request_id)
            if earlier is not None:
                return _replayed_settlement(earlier, request_hash, request_id)
            visit = _owned_visit(found, request.mdtrt_id, request)
            filing = _admission_filing(visit, ended=ended)
            if filing is None:
                return None
            return await self._settle_locked(
                repository, visit, filing, request, (request_id, request_hash)
            )

    async def _settle_asking_filing(
        self, request: Any, request_id: str, request_hash: str
    ) -> settlement_pb2.Settlement:
        """Settle after asking filing, holding no lock across that call: the replay check and
        the visit's read run outside any transaction. (`_settle_on_admission_filing` has already
        found that the admission filing cannot be used, or that the stream is not current.)"""
        async with self._autocommit() as session:
            earlier, found = await SettlementRepository(session).settlement_and_visit(
                request_id, request.mdtrt_id
            )
        if earlier is not None:
            return _replayed_settlement(earlier, request_hash, request_id)
        filing = await self._filing_for(_owned_visit(found, request.mdtrt_id, request))
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            visit = await _visit(repository, request.mdtrt_id, request, lock=True)
            # Settled now: perhaps by this same request while we waited for the lock. (The
            # request id reused on an unsettled visit fails the insert, below.)
            earlier = await repository.settlement_by_request(request_id) if visit.setl_id else None
            if earlier is not None:
                return _replayed_settlement(earlier, request_hash, request_id)
            return await self._settle_locked(
                repository, visit, filing, request, (request_id, request_hash)
            )

    async def _settle_locked(
        self,
        repository: SettlementRepository,
        visit: VisitRow,
        filing: EffectiveFiling | None,
        request: Any,
        identity: tuple[str, str],
    ) -> settlement_pb2.Settlement:
        """Compute and store the settlement of the locked visit; identity = (request id, hash)."""
        now = _now()
        computed = await self._compute(repository, visit, filing, request, now)
        await self._commit_settlement(repository, visit, computed, identity, now)
        return computed.settlement

    async def CancelSettlement(
        self, request: settlement_service_pb2.CancelSettlementRequest, context: Context
    ) -> settlement_pb2.Settlement:
        _hospital(context)
        request_id = _request_id(request.request_id)
        request_hash = request_fingerprint(request)
        async with self._sessions.begin() as session:
            repository = SettlementRepository(session)
            earlier = await repository.settlement_by_cancel_request(request_id)
            if earlier is not None:
                return _replayed_cancellation(earlier, request_hash, request_id)
            visit = await _visit(repository, request.mdtrt_id, request, lock=True)
            row = await repository.settlement(request.setl_id)
            if row is None or row.mdtrt_id != visit.mdtrt_id:
                raise SettlementNotFound(
                    f"visit {visit.mdtrt_id} has no settlement {request.setl_id}",
                    setlId=request.setl_id,
                )
            if row.status != LIVE:
                raise SettlementCancelled(f"settlement {row.setl_id} was already cancelled")
            now = _now()
            person_year = await repository.person_year(
                row.psn_no, row.insuplc_admdvs, row.year, visit.balc_fen
            )
            policy_year = await repository.policy_year(
                row.psn_no, row.insuplc_admdvs, row.year, row.policy_id, 0
            )
            person_year.burden_fen -= row.burden_fen
            person_year.critical_paid_fen -= row.critical_pay_fen
            person_year.assistance_paid_fen -= row.maf_pay_fen
            person_year.account_balance_fen += row.acct_pay_fen
            policy_year.fund_paid_fen -= row.hifp_pay_fen
            policy_year.inpatient_settlements -= 1 if row.inpatient else 0
            cancelled = settlement_pb2.Settlement.FromString(row.settlement)
            cancelled.status = settlement_pb2.SETTLEMENT_STATUS_CANCELLED
            cancelled.cancel_time.CopyFrom(timestamp(now))
            cancelled.balc.CopyFrom(money(person_year.account_balance_fen))
            row.status = CANCELLED
            row.cancelled_at = now
            row.cancel_request_id = request_id
            row.cancel_request_hash = request_hash
            row.cancellation = cancelled.SerializeToString()
            visit.setl_id = None
            repository.add(
                OutboxRow(
                    **_ledger_event_row(cancelled, ledger_pb2.LEDGER_EVENT_KIND_CANCELLED, now)
                )
            )
        self._on_ledger_event(cancelled)
        return cancelled

    async def GetSettlement(
        self, request: settlement_service_pb2.GetSettlementRequest, context: Context
    ) -> settlement_pb2.Settlement:
        row = await self._readable_settlement(request.setl_id, request.fixmedins_code, context)
        return settlement_pb2.Settlement.FromString(row.cancellation or row.settlement)

    async def ExplainSettlement(
        self, request: settlement_service_pb2.ExplainSettlementRequest, context: Context
    ) -> settlement_pb2.Explanation:
        row = await self._readable_settlement(request.setl_id, request.fixmedins_code, context)
        return settlement_pb2.Explanation.FromString(row.explanation)

    async def GetAnnualAccumulators(
        self, request: settlement_service_pb2.GetAnnualAccumulatorsRequest, context: Context
    ) -> settlement_pb2.AnnualAccumulators:
        caller = caller_from_metadata(context.invocation_metadata())
        async with self._sessions() as session:
            repository = SettlementRepository(session)
            years = await repository.person_years(request.psn_no, request.year)
            if not years:
                raise AccumulatorsNotFound(
                    f"person {request.psn_no} has no settlement in {request.year}"
                )
            year = years[0]
            if caller.kind == "province":
                caller.require_owns(year.insuplc_admdvs, "accumulators")
            policies = await repository.policy_years(year.psn_no, year.insuplc_admdvs, year.year)
        return settlement_pb2.AnnualAccumulators(
            psn_no=year.psn_no,
            insuplc_admdvs=year.insuplc_admdvs,
            year=year.year,
            burden=money(year.burden_fen),
            critical_illness_paid=money(year.critical_paid_fen),
            assistance_paid=money(year.assistance_paid_fen),
            account_balance=money(year.account_balance_fen),
            policies=[
                settlement_pb2.PolicyYear(
                    policy_id=p.policy_id,
                    fund_paid=money(p.fund_paid_fen),
                    inpatient_settlements=p.inpatient_settlements,
                    annual_cap=money(p.annual_cap_fen),
                )
                for p in policies
            ],
        )

    # --- helpers that need the service's dependencies ---

    async def _readable_settlement(
        self, setl_id: str, fixmedins_code: str, context: Context
    ) -> SettlementRow:
        caller = caller_from_metadata(context.invocation_metadata())
        async with self._autocommit() as session:
            repository = SettlementRepository(session)
            row = await repository.settlement(setl_id)
            visit = await repository.visit(row.mdtrt_id) if row else None
        missing = SettlementNotFound(f"no settlement {setl_id}", setlId=setl_id)
        if row is None or visit is None:
            raise missing
        if caller.kind == "province":
            if caller.province_prefix not in (row.insuplc_admdvs[:2], visit.treatment_admdvs[:2]):
                raise missing
        elif caller.kind == "gateway" and fixmedins_code != visit.fixmedins_code:
            raise missing
        return row

    def _filing_stream_current(self) -> bool:
        return self._filing_ends is not None and self._filing_ends.current

    async def _admission_filing(
        self, psn_no: str, treatment_admdvs: str, day: dt.date
    ) -> EffectiveFiling | None:
        """The filing covering an admission: the person's one covering filing in this service's
        copy of filing's live filings while that copy is current (filing_ends.py), else (no
        copy, or none or several covering in it) filing's answer."""
        if self._filing_stream_current():
            async with self._autocommit() as session:
                followed = await SettlementRepository(session, self._driver).followed_filings(
                    psn_no
                )
            covering = [
                row
                for row in followed
                if filing_covers(
                    row.dest_admdvs, row.begin_date, row.end_date, treatment_admdvs, day
                )
            ]
            if len(covering) == 1:
                found = covering[0]
                return EffectiveFiling(found.filing_id, found.category)
        return await self._upstreams.effective_filing(psn_no, treatment_admdvs, day)

    async def _filing_for(
        self, visit: VisitRow, *, ended: bool | None = None
    ) -> EffectiveFiling | None:
        """The filing covering the visit now (a filing made after admission counts): the one
        found at admission when `ended` is False (read from this service's copy of filing's
        stream while that copy was current, filing_ends.py), else filing's answer."""
        admission = _admission_filing(visit, ended=ended)
        if admission is not None:
            return admission
        filing = await self._upstreams.effective_filing(
            visit.psn_no, visit.treatment_admdvs, visit.begin_date
        )
        if filing is None and not visit.emergency:
            raise FilingRequired(
                f"person {visit.psn_no} has no filing covering {visit.treatment_admdvs} on "
                f"{visit.begin_date.isoformat()}; the person can file and settle again",
                psnNo=visit.psn_no,
            )
        return filing

    async def _policy_for(self, repository: SettlementRepository, visit: VisitRow) -> _ChosenPolicy:
        year = visit.begin_date.year
        key = (visit.insuplc_admdvs, visit.insutype, year, visit.med_type, visit.psn_type)
        cached = self._policies.get(key)
        if cached is not None:
            return cached
        areas = [visit.insuplc_admdvs, visit.insuplc_admdvs[:2] + "0000"]
        rows = await repository.policy_candidates(areas, visit.insutype, year, visit.med_type)
        by_key = {
            logic.PolicyKey(r.insuplc_admdvs, r.insutype, r.year, r.med_type, r.psn_type): r
            for r in rows
        }
        chosen = logic.choose_policy(by_key, visit.insuplc_admdvs, visit.psn_type)
        if chosen is None:
            raise PolicyNotFound(
                f"{visit.insuplc_admdvs} has no policy for insutype {visit.insutype}, {year}, "
                f"med_type {visit.med_type}, {visit.psn_type}",
                insuplcAdmdvs=visit.insuplc_admdvs,
            )
        row = by_key[chosen]
        policy = wire.policy_from_proto(settlement_pb2.Policy.FromString(row.body))
        found = _ChosenPolicy(row.policy_id, row.version, policy)
        self._policies.put(key, found)
        return found

    async def _compute(
        self,
        repository: SettlementRepository,
        visit: VisitRow,
        filing: EffectiveFiling | None,
        request: Any,
        now: dt.datetime,
    ) -> _Computed:
        """Steps 1 to 8 for the visit's live lines, against the locked accumulators."""
        if visit.status == _VISIT_CANCELLED:
            raise VisitClosed(f"visit {visit.mdtrt_id} was cancelled")
        if visit.setl_id:
            raise VisitSettled(
                f"visit {visit.mdtrt_id} is settled ({visit.setl_id}); cancel that first",
                setlId=visit.setl_id,
            )
        classified = await repository.live_classified(visit.mdtrt_id)
        if not classified:
            raise NoFees(f"visit {visit.mdtrt_id} has no live fee lines")
        fees = [settlement_pb2.ClassifiedFee.FromString(line) for line in classified]
        sums = wire.line_sums(fees)
        if request.HasField("medfee_sumamt") and request.medfee_sumamt.amount_fen != (
            sums.medfee_sumamt
        ):
            raise TotalMismatch(
                f"medfee_sumamt {yuan_text(request.medfee_sumamt.amount_fen)} differs from the "
                f"uploaded lines' {yuan_text(sums.medfee_sumamt)}; upload or cancel lines first",
                platformFen=sums.medfee_sumamt,
            )
        policy_row = await self._policy_for(repository, visit)
        policy = policy_row.policy
        year = visit.begin_date.year
        person_year, policy_year = await repository.accumulators(
            visit.psn_no,
            visit.insuplc_admdvs,
            year,
            visit.balc_fen,
            (policy_row.policy_id, policy.annual_cap_fen),
        )
        before = logic.YearToDate(
            fund_paid_fen=policy_year.fund_paid_fen,
            inpatient_settlements=policy_year.inpatient_settlements,
            burden_fen=person_year.burden_fen,
            critical_paid_fen=person_year.critical_paid_fen,
            assistance_paid_fen=person_year.assistance_paid_fen,
        )
        category = logic.reduction_category(filing.category if filing else None, visit.emergency)
        facts = logic.Visit(
            institution_level=visit.institution_level,
            inpatient=visit.med_type == logic.INPATIENT,
            reduction_category=category,
            identities=frozenset(filter(None, visit.idet_types.split(";"))),
            use_account=bool(request.acct_used),
            account_balance_fen=person_year.account_balance_fen,
        )
        result = logic.settle(sums, policy, facts, before)
        settlement = wire.settlement_to_proto(result, visit_to_proto(visit), now)
        settlement.policy_id = policy_row.policy_id
        settlement.policy_version = policy_row.version
        settlement.filing_id = filing.filing_id if filing else ""
        settlement.acct_used = bool(request.acct_used)
        explanation = settlement_pb2.Explanation(
            policy_id=policy_row.policy_id,
            policy_version=policy_row.version,
            filing_id=settlement.filing_id,
            reduction_category=category or "",
            lines=fees,
            steps=wire.steps_to_proto(logic.explain(result, policy, facts, before, category)),
        )
        after = logic.year_after(before, result, facts.inpatient)
        person_after = {
            "burden_fen": after.burden_fen,
            "critical_paid_fen": after.critical_paid_fen,
            "assistance_paid_fen": after.assistance_paid_fen,
            "account_balance_fen": result.balc,
        }
        policy_after = {
            "fund_paid_fen": after.fund_paid_fen,
            "inpatient_settlements": after.inpatient_settlements,
            "annual_cap_fen": max(policy.annual_cap_fen, after.fund_paid_fen),
        }
        return _Computed(
            settlement,
            explanation,
            result,
            policy_row,
            [(person_year, person_after), (policy_year, policy_after)],
        )

    async def _commit_settlement(
        self,
        repository: SettlementRepository,
        visit: VisitRow,
        computed: _Computed,
        request: tuple[str, str],
        now: dt.datetime,
    ) -> None:
        """Store the settlement, its explanation and its ledger event; request = (id, hash)."""
        settlement = computed.settlement
        setl_id = logic.platform_id(visit.treatment_admdvs, now.astimezone(SHANGHAI))
        settlement.setl_id = setl_id
        settlement.status = settlement_pb2.SETTLEMENT_STATUS_LIVE
        computed.explanation.setl_id = setl_id
        result = computed.result
        sums = result.sums
        await repository.record_settlement(
            computed.accumulators,
            {
                "setl_id": setl_id,
                "mdtrt_id": visit.mdtrt_id,
                "psn_no": visit.psn_no,
                "insuplc_admdvs": visit.insuplc_admdvs,
                "year": visit.begin_date.year,
                "policy_id": computed.policy.policy_id,
                "inpatient": visit.med_type == logic.INPATIENT,
                "status": LIVE,
                "medfee_sumamt_fen": sums.medfee_sumamt,
                "fulamt_ownpay_fen": sums.fulamt_ownpay_amt,
                "overlmt_selfpay_fen": sums.overlmt_selfpay,
                "preselfpay_fen": sums.preselfpay_amt,
                "inscp_fen": sums.inscp_scp_amt,
                "hifp_pay_fen": result.hifp_pay,
                "critical_pay_fen": result.critical_illness_pay,
                "maf_pay_fen": result.maf_pay,
                "fund_pay_sumamt_fen": result.fund_pay_sumamt,
                "psn_part_fen": result.psn_part_amt,
                "acct_pay_fen": result.acct_pay,
                "psn_cash_pay_fen": result.psn_cash_pay,
                "burden_fen": result.burden_fen,
                "settlement": settlement.SerializeToString(),
                "cancellation": None,
                "explanation": computed.explanation.SerializeToString(),
                "created_at": now,
                "request_id": request[0],
                "request_hash": request[1],
                "cancelled_at": None,
                "cancel_request_id": None,
                "cancel_request_hash": None,
            },
            visit,
            _ledger_event_row(settlement, ledger_pb2.LEDGER_EVENT_KIND_SETTLED, now),
        )


def _ledger_event_row(
    settlement: settlement_pb2.Settlement, kind: int, now: dt.datetime
) -> dict[str, Any]:
    """The outbox row of a settlement's or cancellation's ledger event, written in the same
    transaction; it carries the current trace for its delivery to join."""
    event = wire.ledger_event(settlement, kind, now)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {
        "event_id": event.event_id,
        "event": event.SerializeToString(),
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
        "delivered_at": None,
        "last_error": "",
        "traceparent": carrier.get("traceparent", ""),
    }


def _policy_to_proto(row: PolicyRow) -> settlement_pb2.Policy:
    policy = settlement_pb2.Policy.FromString(row.body)
    policy.policy_id = row.policy_id
    policy.version = row.version
    policy.upload_time.CopyFrom(timestamp(stored_utc(row.uploaded_at)))
    return policy


def _admission_filing(visit: VisitRow, *, ended: bool | None) -> EffectiveFiling | None:
    """The filing found at admission, when the visit had one and it is known not to have ended
    (False: read from this service's copy of filing's stream while that copy was current)."""
    if visit.filing_category and ended is False:
        return EffectiveFiling(visit.filing_id, visit.filing_category)
    return None


async def _visit(
    repository: SettlementRepository, mdtrt_id: str, request: Any, *, lock: bool = False
) -> VisitRow:
    """The visit, if it belongs to the institution the request names."""
    return _owned_visit(await repository.visit(mdtrt_id, lock=lock), mdtrt_id, request)


def _owned_visit(row: VisitRow | None, mdtrt_id: str, request: Any) -> VisitRow:
    """`row`, if it is the visit of the institution the request names (and of its person)."""
    if row is None or row.fixmedins_code != request.fixmedins_code:
        raise VisitNotFound(f"{request.fixmedins_code} has no visit {mdtrt_id}", mdtrtId=mdtrt_id)
    psn_no = getattr(request, "psn_no", "")
    if psn_no and psn_no != row.psn_no:
        raise VisitPersonMismatch(
            f"visit {mdtrt_id} is not of person {psn_no}", mdtrtId=mdtrt_id, psnNo=psn_no
        )
    return row


def _require_open_unsettled(visit: VisitRow) -> None:
    if visit.status == _VISIT_CANCELLED:
        raise VisitClosed(f"visit {visit.mdtrt_id} was cancelled")
    if visit.setl_id:
        raise VisitSettled(
            f"visit {visit.mdtrt_id} is settled ({visit.setl_id}); cancel the settlement before "
            "changing its fees",
            setlId=visit.setl_id,
        )


def _refuse_changed_lines(stored: dict[str, StoredLine], hashes: dict[str, str]) -> None:
    for sn, content_hash in hashes.items():
        row = stored.get(sn)
        if row is not None and row.content_hash != content_hash:
            raise FeeLineConflict(
                f"line {sn} is already uploaded with other content; cancel it (2302) first",
                feedetlSn=sn,
            )


def _replayed_visit(row: VisitRow, request_hash: str, request_id: str) -> settlement_pb2.Visit:
    if row.request_hash != request_hash:
        raise RequestIdConflict(
            f"request_id {request_id} was used for a different admission", requestId=request_id
        )
    return visit_to_proto(row)


def _replayed_settlement(
    row: SettlementRow, request_hash: str, request_id: str
) -> settlement_pb2.Settlement:
    if row.request_hash != request_hash:
        raise RequestIdConflict(
            f"request_id {request_id} was used for a different settlement", requestId=request_id
        )
    return settlement_pb2.Settlement.FromString(row.settlement)


def _replayed_cancellation(
    row: SettlementRow, request_hash: str, request_id: str
) -> settlement_pb2.Settlement:
    if row.cancel_request_hash != request_hash or row.cancellation is None:
        raise RequestIdConflict(
            f"request_id {request_id} was used for a different cancellation",
            requestId=request_id,
        )
    return settlement_pb2.Settlement.FromString(row.cancellation)
