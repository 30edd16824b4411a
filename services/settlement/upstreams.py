"""What settlement asks identity, filing and catalogue, through their generated stubs.

Each call carries the propagated deadline (the channel's interceptor) and the caller identity
"national" (settlement acts for the national platform). An upstream refusal keeps its reason; an
upstream that does not answer becomes UNAVAILABLE / UPSTREAM_UNAVAILABLE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from medsettle.catalogue.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc
from medsettle.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from opentelemetry.trace import Tracer

from services.common.cache import LocalCache
from services.common.callers import caller_metadata
from services.common.categories import category_name
from services.common.channels import make_channels
from services.common.errors import passed_on
from services.common.values import date_to_proto
from services.settlement.errors import InsuranceTypeNotHeld

_AS_NATIONAL = caller_metadata("national")
_ACTIVE = identity_pb2.INSURANCE_STATUS_ACTIVE
_IDEMPOTENT_READS = (
    ("medsettle.identity.v1.IdentityService", "VerifyCredential"),
    ("medsettle.filing.v1.FilingService", "FindEffectiveFiling"),
    ("medsettle.catalogue.v1.CatalogueService", "GetInstitution"),
    ("medsettle.catalogue.v1.CatalogueService", "ClassifyFeeLines"),
)


@dataclass(frozen=True)
class InsuredPerson:
    """Who the credential belongs to and the insurance the visit uses."""

    psn_no: str
    insuplc_admdvs: str
    insutype: str
    psn_type: str
    idet_types: tuple[str, ...]
    balc_fen: int


@dataclass(frozen=True)
class Institution:
    """A designated institution as settlement needs it."""

    fixmedins_code: str
    admdvs: str
    level: int
    open_for: frozenset[str]
    """Medical types open for cross-province settlement ("21", "11", "14")."""


@dataclass(frozen=True)
class EffectiveFiling:
    """The filing covering a visit."""

    filing_id: str
    category: str
    """Category name: "referral", "retired_relocated", ..."""


# How long an institution read from catalogue is used without asking again: admissions of one
# hospital come in bursts, and a change of its level or openings is rare.
INSTITUTION_REMEMBERED_S = 5.0


class Upstreams:
    """Stubs of identity, filing and catalogue over one channel each."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._channels = channels
        self._institutions: LocalCache[Institution] = LocalCache(20_000)
        self._identity = identity_service_pb2_grpc.IdentityServiceStub(channels["identity"])
        self._filing = filing_service_pb2_grpc.FilingServiceStub(channels["filing"])
        self._catalogue = catalogue_service_pb2_grpc.CatalogueServiceStub(channels["catalogue"])

    @classmethod
    def connect(cls, targets: dict[str, str], tracer: Tracer, timeout_s: float) -> Upstreams:
        """Open one channel per upstream (inside the running event loop)."""
        return cls(
            make_channels(
                targets,
                tracer=tracer,
                default_timeout_s=timeout_s,
                idempotent_methods=_IDEMPOTENT_READS,
            )
        )

    async def close(self) -> None:
        """Close the channels."""
        for channel in self._channels.values():
            await channel.close()

    async def insured_person(
        self, credential_type: int, credential_no: str, card_sn: str, insutype: str
    ) -> InsuredPerson:
        """Verify the credential and pick the active insurance of the requested type."""
        request = identity_service_pb2.VerifyCredentialRequest(
            credential_type=credential_type,  # type: ignore[arg-type]
            credential_no=credential_no,
            card_sn=card_sn,
        )
        async with _relaying("identity"):
            reply = await self._identity.VerifyCredential(request, metadata=_AS_NATIONAL)
        active = [i for i in reply.person.insurances if i.status == _ACTIVE]
        chosen = [i for i in active if i.insutype == insutype] if insutype else active[:1]
        if not chosen:
            raise InsuranceTypeNotHeld(
                f"the person holds no active insurance of type {insutype or 'any'}",
                insutype=insutype,
            )
        insurance = chosen[0]
        return InsuredPerson(
            psn_no=reply.person.psn_no,
            insuplc_admdvs=insurance.insuplc_admdvs,
            insutype=insurance.insutype,
            psn_type=insurance.psn_type,
            idet_types=tuple(insurance.idet_types),
            balc_fen=insurance.balc.amount_fen,
        )

    async def institution(self, fixmedins_code: str) -> Institution:
        """The designated institution (INSTITUTION_NOT_FOUND passes through), as catalogue
        described it at most INSTITUTION_REMEMBERED_S ago."""
        known = self._institutions.get(fixmedins_code)
        if known is not None:
            return known
        request = catalogue_service_pb2.GetInstitutionRequest(fixmedins_code=fixmedins_code)
        async with _relaying("catalogue"):
            reply = await self._catalogue.GetInstitution(request, metadata=_AS_NATIONAL)
        flags = {"21": reply.open_inpatient, "11": reply.open_outpatient, "14": reply.open_chronic}
        institution = Institution(
            fixmedins_code=reply.fixmedins_code,
            admdvs=reply.admdvs,
            level=reply.level,
            open_for=frozenset(med_type for med_type, is_open in flags.items() if is_open),
        )
        self._institutions.set_many({fixmedins_code: institution}, INSTITUTION_REMEMBERED_S)
        return institution

    async def effective_filing(
        self, psn_no: str, treatment_admdvs: str, day: dt.date
    ) -> EffectiveFiling | None:
        """The filing covering (person, area, day), or None when there is none."""
        request = filing_service_pb2.FindEffectiveFilingRequest(
            psn_no=psn_no, treatment_admdvs=treatment_admdvs, date=date_to_proto(day)
        )
        try:
            reply = await self._filing.FindEffectiveFiling(request, metadata=_AS_NATIONAL)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise passed_on(error, "filing") from None
        return EffectiveFiling(reply.filing_id, category_name(reply.category))

    async def classify(
        self,
        fixmedins_code: str,
        med_type: str,
        lines: Sequence[catalogue_service_pb2.FeeLine],
    ) -> catalogue_service_pb2.ClassifyFeeLinesResponse:
        """Classify fee lines against the treatment province's current catalogue."""
        request = catalogue_service_pb2.ClassifyFeeLinesRequest(
            fixmedins_code=fixmedins_code, med_type=med_type, lines=lines
        )
        async with _relaying("catalogue"):
            return await self._catalogue.ClassifyFeeLines(request, metadata=_AS_NATIONAL)


@asynccontextmanager
async def _relaying(upstream: str) -> AsyncIterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise passed_on(error, upstream) from None
