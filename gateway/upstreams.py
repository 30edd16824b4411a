"""The gateway's channels and stubs to the services, and how their refusals reach a hospital.

Every call carries the caller identity "gateway" (the services trust it to have authenticated the
institution named in the request) and the request's remaining budget as its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from medsettle.catalogue.v1 import catalogue_service_pb2_grpc
from medsettle.clearing.v1 import clearing_service_pb2_grpc
from medsettle.filing.v1 import filing_service_pb2_grpc
from medsettle.identity.v1 import identity_service_pb2_grpc
from medsettle.settlement.v1 import settlement_service_pb2_grpc
from opentelemetry.trace import Tracer

from services.common.callers import caller_metadata
from services.common.channels import make_channels
from services.common.errors import UNANSWERED_CODES, error_info

if TYPE_CHECKING:
    IdentityStub = identity_service_pb2_grpc.IdentityServiceAsyncStub
    FilingStub = filing_service_pb2_grpc.FilingServiceAsyncStub
    CatalogueStub = catalogue_service_pb2_grpc.CatalogueServiceAsyncStub
    SettlementStub = settlement_service_pb2_grpc.SettlementServiceAsyncStub
    ClearingStub = clearing_service_pb2_grpc.ClearingServiceAsyncStub

AS_GATEWAY = caller_metadata("gateway")
T = TypeVar("T")
_IDEMPOTENT_READS = (
    ("medsettle.identity.v1.IdentityService", "VerifyCredential"),
    ("medsettle.identity.v1.IdentityService", "GetPerson"),
    ("medsettle.catalogue.v1.CatalogueService", "GetInstitution"),
    ("medsettle.catalogue.v1.CatalogueService", "SearchInstitutions"),
    ("medsettle.catalogue.v1.CatalogueService", "GetCatalogueItem"),
    ("medsettle.settlement.v1.SettlementService", "GetSettlement"),
    ("medsettle.settlement.v1.SettlementService", "GetVisit"),
    ("medsettle.settlement.v1.SettlementService", "GetAnnualAccumulators"),
)


class ServiceRefused(Exception):
    """A service refused the request, or did not answer.

    `final` is False when nothing was decided (unavailable, timed out): the hospital may repeat
    the same msgid, so such an answer is never stored as the message's response.
    """

    def __init__(
        self, message: str, reason: str, *, final: bool, code: grpc.StatusCode | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.final = final
        self.code = code


async def ask(call: Awaitable[T], service: str) -> T:
    """Await one RPC; a failure becomes ServiceRefused with a message a hospital can act on."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise refusal(error, service) from None


def refusal(error: grpc.aio.AioRpcError, service: str) -> ServiceRefused:
    """The hospital-facing form of a failed call."""
    info = None
    if error.code() not in UNANSWERED_CODES:
        try:
            info = error_info(error)
        except ValueError:
            info = None
    if info is None:
        return ServiceRefused(
            f"{service} did not answer ({error.code().name}); send the same msgid again later, "
            "or reverse it with 2601",
            "UPSTREAM_UNAVAILABLE",
            final=False,
        )
    return ServiceRefused(
        f"{error.details()} [{info.reason}]", info.reason, final=True, code=error.code()
    )


class Upstreams:
    """One channel per service, opened at start-up in the serving loop and shared by requests."""

    def __init__(self, targets: dict[str, str], tracer: Tracer, timeout_s: float) -> None:
        self.channels = make_channels(
            targets,
            tracer=tracer,
            default_timeout_s=timeout_s,
            idempotent_methods=_IDEMPOTENT_READS,
        )
        self.identity: IdentityStub = identity_service_pb2_grpc.IdentityServiceStub(
            self.channels["identity"]
        )
        self.filing: FilingStub = filing_service_pb2_grpc.FilingServiceStub(self.channels["filing"])
        self.catalogue: CatalogueStub = catalogue_service_pb2_grpc.CatalogueServiceStub(
            self.channels["catalogue"]
        )
        self.settlement: SettlementStub = settlement_service_pb2_grpc.SettlementServiceStub(
            self.channels["settlement"]
        )
        self.clearing: ClearingStub = clearing_service_pb2_grpc.ClearingServiceStub(
            self.channels["clearing"]
        )

    async def health(self) -> dict[str, str]:
        """Each upstream's gRPC health status name (UNAVAILABLE when it does not answer)."""

        async def check(channel: grpc.aio.Channel) -> str:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

        names = list(self.channels)
        statuses = await asyncio.gather(*(check(self.channels[name]) for name in names))
        return dict(zip(names, statuses, strict=True))

    async def close(self) -> None:
        """Close every channel."""
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
