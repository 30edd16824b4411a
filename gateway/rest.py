"""REST for persons and the public: self-service filing, institution search, settlement notices.

A person proves who they are with their e-voucher token (医保电子凭证, `Authorization: Bearer`);
the gateway verifies it with identity and then acts for the person's insured province, so the
services apply the same ownership rules as for that province's own platform. Errors are JSON
`{"error": {"reason", "message"}}` with an HTTP status that fits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import grpc
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from medsettle.catalogue.v1 import catalogue_service_pb2
from medsettle.filing.v1 import filing_pb2, filing_service_pb2
from medsettle.identity.v1 import identity_service_pb2
from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2
from pydantic import BaseModel, Field

from gateway.envelope import yuan
from gateway.national import local_time
from gateway.upstreams import AS_GATEWAY, ServiceRefused, Upstreams, ask
from services.common.callers import caller_metadata
from services.common.categories import FILING_CATEGORIES, category_name
from services.common.values import date_to_proto, optional_date, province_of

_STATUS_NAMES = {
    filing_pb2.FILING_STATUS_ACTIVE: "active",
    filing_pb2.FILING_STATUS_REVOKED: "revoked",
    filing_pb2.FILING_STATUS_SUPERSEDED: "superseded",
}
# HTTP status of a service refusal, by its gRPC code.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
}
T = TypeVar("T")
_CREDENTIAL_REASONS = {"VOUCHER_INVALID", "VOUCHER_EXPIRED", "PERSON_NOT_FOUND"}


class RestError(Exception):
    """A refusal with its HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def error_response(error: RestError) -> JSONResponse:
    """The JSON body of a refusal."""
    return JSONResponse(
        {"error": {"reason": error.reason, "message": error.message}}, status_code=error.status
    )


def _from_refusal(refused: ServiceRefused) -> RestError:
    if not refused.final:
        return RestError(503, refused.reason, refused.message)
    if refused.reason in _CREDENTIAL_REASONS:
        return RestError(401, refused.reason, refused.message)
    status = _HTTP_STATUS.get(refused.code, 400) if refused.code else 400
    return RestError(status, refused.reason, refused.message)


class FilingRequest(BaseModel):
    """A person's own filing (备案) for treatment in another province."""

    category: str = Field(description="One of: " + ", ".join(FILING_CATEGORIES))
    dest_admdvs: str = Field(
        pattern=r"^\d{6}$", description="Destination city code, or province code (xx0000)"
    )
    begin_date: dt.date | None = Field(default=None, description="First day; absent = today")
    end_date: dt.date | None = Field(
        default=None, description="Last day (temporary filings); absent = six months"
    )


class FilingOut(BaseModel):
    """A filing as the person sees it."""

    filing_id: str
    category: str
    insuplc_admdvs: str
    dest_admdvs: str
    begin_date: dt.date
    end_date: dt.date | None
    status: str


class InstitutionOut(BaseModel):
    """An institution open for cross-province direct settlement."""

    fixmedins_code: str
    fixmedins_name: str
    admdvs: str
    level: int
    open_inpatient: bool
    open_outpatient: bool
    open_chronic: bool


class InstitutionPage(BaseModel):
    """One page of an institution search."""

    institutions: list[InstitutionOut]
    next_page_token: str


class FundLine(BaseModel):
    """What one fund paid."""

    fund_pay_type: str
    fund_pay_type_name: str
    fund_payamt: Decimal


class SettlementNotice(BaseModel):
    """A person's settlement notice (结算单): amounts in yuan with two decimals."""

    setl_id: str
    mdtrt_id: str
    fixmedins_code: str
    med_type: str
    setl_time: str
    status: str
    medfee_sumamt: Decimal
    inscp_scp_amt: Decimal
    act_pay_dedc: Decimal
    fund_pay_sumamt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal
    funds: list[FundLine]


def _filing_out(filing: filing_pb2.Filing) -> FilingOut:
    begin = optional_date(filing, "begin_date")
    assert begin is not None
    return FilingOut(
        filing_id=filing.filing_id,
        category=category_name(filing.category),
        insuplc_admdvs=filing.insuplc_admdvs,
        dest_admdvs=filing.dest_admdvs,
        begin_date=begin,
        end_date=optional_date(filing, "end_date"),
        status=_STATUS_NAMES.get(filing.status, "unspecified"),
    )


def _notice(settlement: settlement_pb2.Settlement) -> SettlementNotice:
    cancelled = settlement.status == settlement_pb2.SETTLEMENT_STATUS_CANCELLED
    return SettlementNotice(
        setl_id=settlement.setl_id,
        mdtrt_id=settlement.mdtrt_id,
        fixmedins_code=settlement.fixmedins_code,
        med_type=settlement.med_type,
        setl_time=local_time(settlement.setl_time),
        status="cancelled" if cancelled else "settled",
        medfee_sumamt=yuan(settlement.medfee_sumamt.amount_fen),
        inscp_scp_amt=yuan(settlement.inscp_scp_amt.amount_fen),
        act_pay_dedc=yuan(settlement.act_pay_dedc.amount_fen),
        fund_pay_sumamt=yuan(settlement.fund_pay_sumamt.amount_fen),
        acct_pay=yuan(settlement.acct_pay.amount_fen),
        psn_cash_pay=yuan(settlement.psn_cash_pay.amount_fen),
        funds=[
            FundLine(
                fund_pay_type=fund.fund_pay_type,
                fund_pay_type_name=fund.fund_pay_type_name,
                fund_payamt=yuan(fund.fund_payamt.amount_fen),
            )
            for fund in settlement.fund_payments
        ],
    )


async def _person(
    upstreams: Upstreams, authorization: str
) -> identity_service_pb2.VerifyCredentialResponse:
    """The person whose e-voucher token is in `Authorization: Bearer ...`."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 200:
        raise RestError(
            401, "VOUCHER_REQUIRED", "send the e-voucher token as Authorization: Bearer"
        )
    request = identity_service_pb2.VerifyCredentialRequest(
        credential_type=identity_service_pb2.CREDENTIAL_TYPE_E_VOUCHER, credential_no=token.strip()
    )
    return await _ask(upstreams.identity.VerifyCredential(request, metadata=AS_GATEWAY), "identity")


async def _ask(call: Awaitable[T], service: str) -> T:
    try:
        return await ask(call, service)
    except ServiceRefused as refused:
        raise _from_refusal(refused) from None


def _filing_request_id(psn_no: str, idempotency_key: str) -> str:
    """The filing service's request_id (≤ 64): the person's key, scoped to the person."""
    scoped = hashlib.sha256(f"{psn_no}/{idempotency_key}".encode()).hexdigest()[:40]
    return f"rest/{scoped}"


def _as_province_of(area: str) -> tuple[tuple[str, str], ...]:
    """Act for the person's insured province (the services check ownership against it)."""
    return caller_metadata(f"province:{province_of(area)}")


def router() -> APIRouter:
    """The REST routes; upstreams come from the app state."""
    routes = APIRouter(prefix="/v1")

    @routes.post(
        "/filings",
        response_model=FilingOut,
        status_code=201,
        summary="File for treatment in another province (self-service, with the e-voucher)",
        responses={400: {}, 401: {}, 409: {}, 503: {}},
    )
    async def create_filing(
        body: FilingRequest,
        request: Request,
        authorization: Annotated[str, Header(description="Bearer <e-voucher token>")] = "",
        idempotency_key: Annotated[
            str, Header(max_length=64, description="Repeat-safe key chosen by the app")
        ] = "",
    ) -> Any:
        upstreams: Upstreams = request.app.state.upstreams
        try:
            if not idempotency_key:
                raise RestError(400, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header")
            if body.category not in FILING_CATEGORIES:
                raise RestError(
                    400,
                    "CATEGORY_INVALID",
                    f"category must be one of {', '.join(FILING_CATEGORIES)}",
                )
            verified = await _person(upstreams, authorization)
            area = verified.insured_area.admdvs
            create = filing_service_pb2.CreateFilingRequest(
                request_id=_filing_request_id(verified.person.psn_no, idempotency_key),
                psn_no=verified.person.psn_no,
                category=FILING_CATEGORIES[body.category],
                insuplc_admdvs=area,
                dest_admdvs=body.dest_admdvs,
                channel=filing_pb2.FILING_CHANNEL_APP,
            )
            if body.begin_date:
                create.begin_date.CopyFrom(date_to_proto(body.begin_date))
            if body.end_date:
                create.end_date.CopyFrom(date_to_proto(body.end_date))
            filing = await _ask(
                upstreams.filing.CreateFiling(create, metadata=_as_province_of(area)),
                "filing",
            )
        except RestError as error:
            return error_response(error)
        return JSONResponse(_filing_out(filing).model_dump(mode="json"), status_code=201)

    @routes.get(
        "/institutions",
        response_model=InstitutionPage,
        summary="Institutions of an area open for cross-province direct settlement (public)",
        responses={400: {}, 503: {}},
    )
    async def search_institutions(
        request: Request,
        admdvs: Annotated[str, Query(pattern=r"^\d{2}(\d{4})?$|^\d{6}$")],
        med_type: Annotated[str, Query(pattern=r"^(11|14|21)?$")] = "",
        level: Annotated[int, Query(ge=0, le=3)] = 0,
        name: Annotated[str, Query(max_length=50)] = "",
        page_size: Annotated[int, Query(ge=0, le=500)] = 0,
        page_token: Annotated[str, Query(max_length=200)] = "",
    ) -> Any:
        upstreams: Upstreams = request.app.state.upstreams
        search = catalogue_service_pb2.SearchInstitutionsRequest(
            admdvs=admdvs,
            level=level,
            open_for_med_type=med_type,
            name_contains=name,
            page_size=page_size,
            page_token=page_token,
        )
        try:
            reply = await _ask(
                upstreams.catalogue.SearchInstitutions(search, metadata=AS_GATEWAY), "catalogue"
            )
        except RestError as error:
            return error_response(error)
        return InstitutionPage(
            institutions=[
                InstitutionOut(
                    fixmedins_code=found.fixmedins_code,
                    fixmedins_name=found.fixmedins_name,
                    admdvs=found.admdvs,
                    level=found.level,
                    open_inpatient=found.open_inpatient,
                    open_outpatient=found.open_outpatient,
                    open_chronic=found.open_chronic,
                )
                for found in reply.institutions
            ],
            next_page_token=reply.next_page_token,
        )

    @routes.get(
        "/settlements/{setl_id}/notice",
        response_model=SettlementNotice,
        summary="The person's own settlement notice (with the e-voucher)",
        responses={401: {}, 404: {}, 503: {}},
    )
    async def settlement_notice(
        setl_id: Annotated[str, Path(max_length=30)],
        request: Request,
        authorization: Annotated[str, Header(description="Bearer <e-voucher token>")] = "",
    ) -> Any:
        upstreams: Upstreams = request.app.state.upstreams
        try:
            verified = await _person(upstreams, authorization)
            lookup = settlement_service_pb2.GetSettlementRequest(setl_id=setl_id)
            settlement = await _ask(
                upstreams.settlement.GetSettlement(
                    lookup,
                    metadata=_as_province_of(verified.insured_area.admdvs),
                ),
                "settlement",
            )
            if settlement.psn_no != verified.person.psn_no:
                raise RestError(404, "SETTLEMENT_NOT_FOUND", f"no settlement {setl_id}")
        except RestError as error:
            return error_response(error)
        return JSONResponse(_notice(settlement).model_dump(mode="json"))

    return routes
