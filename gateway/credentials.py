"""Issuing an institution's gateway credentials (`medsettle hospital-credentials`)."""

from __future__ import annotations

import datetime as dt

import grpc
from medsettle.catalogue.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc

from gateway.auth import new_credentials
from gateway.envelope import EnvelopeError
from gateway.models import MIGRATIONS_DIR, Base, CredentialRow
from gateway.repository import GatewayRepository
from services.common.callers import caller_metadata
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade_to_head


async def issue_credentials(
    fixmedins_code: str, catalogue_target: str, database_url: str
) -> dict[str, str]:
    """Issue (or re-issue) credentials to a designated institution; earlier ones stop working.

    The institution must be known to the catalogue service; the credentials are written to the
    gateway's database, which is migrated first if it is new.
    """
    async with grpc.aio.insecure_channel(catalogue_target) as channel:
        stub = catalogue_service_pb2_grpc.CatalogueServiceStub(channel)
        try:
            await stub.GetInstitution(
                catalogue_service_pb2.GetInstitutionRequest(fixmedins_code=fixmedins_code),
                metadata=caller_metadata("national"),
                timeout=5,
            )
        except grpc.aio.AioRpcError as error:
            raise EnvelopeError(
                f"{fixmedins_code} is not a designated institution the catalogue knows "
                f"({error.code().name}: {error.details()})"
            ) from None
    engine = make_engine(database_url)
    try:
        await upgrade_to_head(engine, MIGRATIONS_DIR, Base.metadata)
        paasid, secret = new_credentials(fixmedins_code)
        async with make_session_factory(engine).begin() as session:
            await GatewayRepository(session).replace_credential(
                CredentialRow(
                    fixmedins_code=fixmedins_code,
                    paasid=paasid,
                    secret=secret,
                    issued_at=dt.datetime.now(dt.UTC),
                )
            )
    finally:
        await engine.dispose()
    return {"fixmedins_code": fixmedins_code, "paasid": paasid, "secret": secret}
