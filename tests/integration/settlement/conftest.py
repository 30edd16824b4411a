"""The settlement service in-process against real identity, filing and catalogue services.

The upstream services run once per module on SQLite, loaded with the demo regions, institutions
and catalogues plus the persons and filings below; each test gets its own settlement database
(SQLite and PostgreSQL) with the demo policies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
import pytest_asyncio
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from medsettle.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from medsettle.settlement.v1 import settlement_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.bundle_loader import load_bundle
from services.catalogue import server as catalogue_server
from services.catalogue.config import CatalogueSettings
from services.common.channels import make_channel
from services.common.config import ServiceSettings
from services.common.runtime import Storage, open_storage, stop_tasks
from services.common.server import start_server
from services.common.tracing import make_tracer_provider
from services.common.values import date_to_proto, today_in_china
from services.demo.bundle import write_demo_bundle
from services.filing import server as filing_server
from services.filing.config import FilingSettings
from services.identity import server as identity_server
from services.identity.config import IdentitySettings
from services.settlement.bundle import load_policies, read_policies
from services.settlement.config import SettlementSettings
from services.settlement.filing_ends import FilingEnds
from services.settlement.models import Base
from services.settlement.server import MIGRATIONS_DIR, build_servicer, registrar
from services.settlement.upstreams import Upstreams
from tests.harness import national, serving
from tests.people import person

if TYPE_CHECKING:
    SettlementStub = settlement_service_pb2_grpc.SettlementServiceAsyncStub
    FilingStub = filing_service_pb2_grpc.FilingServiceAsyncStub

BEIJING_HOSPITAL = "H11010000001"  # level 3, open for 21, 11 and 14
BEIJING_CLINIC = "H11010000003"  # level 1, open for outpatient only
# Persons: psn_no -> (insured area, insutype, psn_type, idet_types, filing to, filing category)
RETIREE = "P131000000001"  # 廊坊 retiree, long-term filing to Beijing (the worked example)
RESIDENT = "P510100000002"  # 成都 resident, low income, referral filing to Beijing
UNFILED = "P320100000003"  # 南京 employee without a filing
LOCAL = "P110100000004"  # insured in Beijing itself
CAPPED = "P330100000005"  # 杭州 employee with a small annual cap (concurrency test)
PERSONS = {
    RETIREE: ("131000", "310", "retired", (), "110000", "retired_relocated", 50_000),
    RESIDENT: ("510100", "390", "resident", ("low_income",), "110100", "referral", 0),
    UNFILED: ("320100", "310", "employed", (), "", "", 80_000),
    LOCAL: ("110100", "310", "employed", (), "", "", 0),
    CAPPED: ("330100", "310", "employed", (), "110000", "long_term_resident", 0),
}


@dataclass
class Upstream:
    """The running upstream services and what the tests need of them."""

    targets: dict[str, str]
    filing: FilingStub
    policies_path: Path
    certno: dict[str, str]


def certno_of(psn_no: str, upstream: Upstream) -> str:
    """The ID number a person identifies with."""
    return upstream.certno[psn_no]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def upstream(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Upstream]:
    """identity, filing and catalogue on SQLite with demo reference data and the test persons."""
    root = tmp_path_factory.mktemp("upstream")
    provider = make_tracer_provider("upstream-test")
    bundle = write_demo_bundle(root / "bundle", persons=0)
    policies = root / "policies.json"
    (bundle / "policies.json").rename(policies)
    async with AsyncExitStack() as stack:
        targets = {}
        services: list[tuple[str, ServiceSettings, object]] = [
            ("identity", IdentitySettings(data_dir=root), identity_server),
            # UNFILED's area sets no lock, so a test can file and revoke again.
            (
                "filing",
                FilingSettings(data_dir=root, lock_months_by_area={"320100": 0}),
                filing_server,
            ),
            ("catalogue", CatalogueSettings(data_dir=root), catalogue_server),
        ]
        for name, settings, module in services:
            storage = await open_storage(
                settings,
                module.Base.metadata,  # type: ignore[attr-defined]
                module.MIGRATIONS_DIR,  # type: ignore[attr-defined]
            )
            stack.push_async_callback(storage.close)
            servicer = module.build_servicer(settings, storage)  # type: ignore[attr-defined]
            running = await start_server(
                module.registrar(servicer),  # type: ignore[attr-defined]
                host="127.0.0.1",
                port=0,
                tracer=provider.get_tracer(name),
                error_domain=f"{name}.medsettle",
                max_concurrent_rpcs=256,
            )
            stack.push_async_callback(running.stop, 0)
            targets[name] = f"127.0.0.1:{running.port}"
        report = await load_bundle(bundle, {**targets, "settlement": "127.0.0.1:1"})
        assert report.ok, [f.line() for f in report.files]
        channels = {
            name: make_channel(target, tracer=provider.get_tracer("test"), default_timeout_s=30)
            for name, target in targets.items()
        }
        for channel in channels.values():
            stack.push_async_callback(channel.close)
        certno = await _add_persons(channels["identity"])
        filing = filing_service_pb2_grpc.FilingServiceStub(channels["filing"])
        await _add_filings(filing)
        yield Upstream(targets, filing, policies, certno)


async def _add_persons(channel: grpc.aio.Channel) -> dict[str, str]:
    identity = identity_service_pb2_grpc.IdentityServiceStub(channel)
    people = [
        person(
            psn_no,
            area=area,
            serial=index,
            insutype=insutype,
            psn_type=psn_type,
            idet_types=idet,
            balc_fen=balc,
        )
        for index, (psn_no, (area, insutype, psn_type, idet, _, _, balc)) in enumerate(
            PERSONS.items(), start=1
        )
    ]

    async def stream() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
        yield identity_service_pb2.UpsertPersonsRequest(persons=people, last=True)

    await identity.UpsertPersons(stream(), metadata=national())
    return {p.psn_no: p.certno for p in people}


async def _add_filings(filing: FilingStub) -> None:
    begin = today_in_china() - dt.timedelta(days=30)
    for psn_no, (area, _, _, _, dest, category, _) in PERSONS.items():
        if not dest:
            continue
        request = filing_service_pb2.CreateFilingRequest(
            request_id=f"setup-{psn_no}",
            psn_no=psn_no,
            category=filing_pb2.FilingCategory.Value(f"FILING_CATEGORY_{category.upper()}"),
            insuplc_admdvs=area,
            dest_admdvs=dest,
            begin_date=date_to_proto(begin),
            channel=filing_pb2.FILING_CHANNEL_APP,
        )
        if category == "referral":
            request.end_date.CopyFrom(date_to_proto(begin + dt.timedelta(days=200)))
        await filing.CreateFiling(request, metadata=national())


@pytest.fixture(
    params=[("sqlite", False), ("postgresql", False), ("postgresql", True)],
    ids=["sqlite", "postgresql", "postgresql-following-filing"],
)
def backend(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """(database, whether settlement follows filing's stream). Each test runs on SQLite and on
    PostgreSQL with settlement asking filing at every settlement, then on PostgreSQL following
    filing's stream as deployed (services.settlement.filing_ends: the admission filing is used
    while the stream is current, and the settling transaction's first statement locks)."""
    found: tuple[str, bool] = request.param
    return found


@pytest.fixture
def database_url(backend: tuple[str, bool], request: pytest.FixtureRequest) -> str:
    """This module's databases: the backend's (overrides tests/conftest.py's)."""
    url: str = request.getfixturevalue("sqlite_url" if backend[0] == "sqlite" else "postgres_url")
    return url


@pytest.fixture
def settlement_settings(database_url: str, tmp_path: Path) -> SettlementSettings:
    """Settings of a settlement service on this test's database (SQLite or PostgreSQL)."""
    return SettlementSettings(database_url=database_url, data_dir=tmp_path, relay_enabled=False)


@pytest_asyncio.fixture(loop_scope="module")
async def settlement(
    backend: tuple[str, bool],
    upstream: Upstream,
    settlement_settings: SettlementSettings,
    tracer_provider: TracerProvider,
) -> AsyncIterator[SettlementStub]:
    """A settlement service with the demo policies, talking to the module's upstreams; it
    follows filing's stream when the backend says so."""
    async with AsyncExitStack() as stack:
        # As the service opens it: on PostgreSQL an admission's and an upload's lookups run on
        # asyncpg directly (services.common.driver).
        storage: Storage = await open_storage(
            settlement_settings,
            Base.metadata,
            MIGRATIONS_DIR,
            driver_pool_size=settlement_settings.lookup_pool_size,
        )
        assert (storage.driver is None) == (storage.engine.dialect.name == "sqlite")
        tracer = tracer_provider.get_tracer("settlement")
        upstreams = Upstreams.connect(upstream.targets, tracer, 10)
        stack.push_async_callback(upstreams.close)
        follower = None
        if backend[1]:
            watch = make_channel(upstream.targets["filing"], tracer=tracer, default_timeout_s=60)
            stack.push_async_callback(watch.close)
            follower = FilingEnds(storage.sessions, watch, current_s=60)
        servicer = build_servicer(storage, upstreams, None, filing_ends=follower)
        ch = await stack.enter_async_context(
            serving(settlement_settings, storage, registrar(servicer), tracer_provider)
        )
        if follower is not None:
            # Stopped before the service and its storage close (the stack unwinds in reverse).
            following = asyncio.create_task(follower.run())
            stack.push_async_callback(stop_tasks, [following])
        stub = settlement_service_pb2_grpc.SettlementServiceStub(ch)
        await load_policies(stub, read_policies(upstream.policies_path))
        for _ in range(200):
            if follower is None or follower.current:
                break
            await asyncio.sleep(0.05)
        assert follower is None or follower.current, "filing's stream was not followed in 10 s"
        yield stub
