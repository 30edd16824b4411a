"""A clearing service on SQLite or PostgreSQL, shared by the clearing tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, ledger_pb2
from opentelemetry.sdk.trace import TracerProvider

from services.clearing.config import ClearingSettings
from services.clearing.models import Base
from services.clearing.server import MIGRATIONS_DIR, build_servicer, registrar
from services.common.runtime import Storage, open_storage
from services.common.values import money, timestamp
from tests.harness import national, serving

if TYPE_CHECKING:
    Stub = clearing_service_pb2_grpc.ClearingServiceAsyncStub


@pytest.fixture
async def clearing(
    database_url: str, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[tuple[Stub, Storage]]:
    settings = ClearingSettings(database_url=database_url, data_dir=tmp_path)
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    async with serving(
        settings,
        storage,
        registrar(build_servicer(storage, tracer_provider.get_tracer("clearing"))),
        tracer_provider,
    ) as ch:
        yield clearing_service_pb2_grpc.ClearingServiceStub(ch), storage


HOSPITAL = "H11010000001"


def ledger_event(
    setl_id: str,
    *,
    medfee: int,
    fund: int,
    acct: int = 0,
    med_type: str = "21",
    cancel: bool = False,
    day: dt.date = dt.date(2026, 11, 20),
    insured: str = "131000",
    treatment: str = "110100",
) -> ledger_pb2.LedgerEvent:
    """A settlement (or, with cancel, its cancellation) at 10:00 Beijing time on `day`."""
    sign = -1 if cancel else 1
    when = dt.datetime.combine(day, dt.time(2), dt.UTC)
    return ledger_pb2.LedgerEvent(
        event_id=f"{setl_id}{'C' if cancel else 'S'}",
        kind=ledger_pb2.LEDGER_EVENT_KIND_CANCELLED
        if cancel
        else ledger_pb2.LEDGER_EVENT_KIND_SETTLED,
        setl_id=setl_id,
        mdtrt_id=f"M{setl_id}",
        fixmedins_code=HOSPITAL,
        treatment_admdvs=treatment,
        insuplc_admdvs=insured,
        insutype="310",
        med_type=med_type,
        event_time=timestamp(when),
        medfee_sumamt=money(sign * medfee),
        hifp_pay=money(sign * fund),
        fund_pay_sumamt=money(sign * fund),
        acct_pay=money(sign * acct),
        psn_cash_pay=money(sign * (medfee - fund - acct)),
        psn_no="P1",
    )


async def record(stub: Stub, setl_id: str, **event: Any) -> None:
    """Record one ledger_event(setl_id, **event) through RecordLedgerEvent."""
    recorded = ledger_event(setl_id, **event)
    await stub.RecordLedgerEvent(
        clearing_service_pb2.RecordLedgerEventRequest(request_id=recorded.event_id, event=recorded),
        metadata=national(),
    )
