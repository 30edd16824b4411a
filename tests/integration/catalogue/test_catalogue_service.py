"""CatalogueService over gRPC: PostgreSQL + Redis and SQLite + in-process cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.catalogue.config import CatalogueSettings
from services.catalogue.models import Base
from services.catalogue.server import MIGRATIONS_DIR, build_servicer, registrar
from services.common.errors import error_info
from services.common.runtime import open_storage
from services.common.values import date_to_proto, money
from tests.harness import province, refusal, serving
from tests.tcp_proxy import TcpProxy

if TYPE_CHECKING:
    Stub = catalogue_service_pb2_grpc.CatalogueServiceAsyncStub

BEIJING = province("110000")
A, B, C = catalogue_pb2.ITEM_CLASS_A, catalogue_pb2.ITEM_CLASS_B, catalogue_pb2.ITEM_CLASS_C
REASON = catalogue_service_pb2.NonPayableReason
TODAY = dt.date(2026, 7, 1)


@dataclass
class Catalogue:
    stub: Stub
    proxy: TcpProxy | None


@pytest.fixture(params=["sqlite-process", "postgres-redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(database URL, Redis key prefix): SQLite alone, or PostgreSQL with Redis."""
    if request.param == "sqlite-process":
        return request.getfixturevalue("sqlite_url"), ""
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("redis_prefix")


@pytest.fixture
async def catalogue(
    backend: tuple[str, str], tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[Catalogue]:
    database_url, redis_prefix = backend
    proxy = None
    settings = CatalogueSettings(data_dir=tmp_path, database_url=database_url)
    if redis_prefix:
        proxy = TcpProxy("127.0.0.1", 6379)
        await proxy.start()
        settings = CatalogueSettings(
            data_dir=tmp_path,
            database_url=database_url,
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
            redis_prefix=redis_prefix,
        )
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    async with serving(
        settings, storage, registrar(build_servicer(settings, storage)), tracer_provider
    ) as channel:
        yield Catalogue(catalogue_service_pb2_grpc.CatalogueServiceStub(channel), proxy)
    if proxy is not None:
        await proxy.stop()


def catalogue_item(
    code: str,
    item_class: int = A,
    selfpay: str = "0",
    cap_fen: int | None = None,
    min_level: int = 0,
    med_types: tuple[str, ...] = (),
    begin: dt.date = dt.date(2026, 1, 1),
    end: dt.date | None = None,
    name: str = "",
) -> catalogue_pb2.CatalogueItem:
    item = catalogue_pb2.CatalogueItem(
        list_type="101",
        med_list_codg=code,
        name=name or f"item {code}",
        item_class=item_class,  # type: ignore[arg-type]
        selfpay_prop=selfpay,
        min_level=min_level,
        med_types=med_types,
        begin_date=date_to_proto(begin),
    )
    if cap_fen is not None:
        item.price_cap.CopyFrom(money(cap_fen))
    if end is not None:
        item.end_date.CopyFrom(date_to_proto(end))
    return item


ITEMS = [
    catalogue_item("A001", name="阿卡波糖片"),
    catalogue_item("B001", B, "0.10", name="瑞格列奈片"),
    catalogue_item("B002", B, "0.05", cap_fen=1250),
    catalogue_item("C001", C),
    catalogue_item("L003", min_level=3),
    catalogue_item("T021", med_types=("21",)),
    catalogue_item("OLD1", end=dt.date(2026, 6, 30)),
]


async def upload(
    stub: Stub, items: list[catalogue_pb2.CatalogueItem], prov: str = "110000"
) -> catalogue_pb2.CatalogueVersion:
    async def messages() -> AsyncIterator[catalogue_service_pb2.UpsertCatalogueRequest]:
        yield catalogue_service_pb2.UpsertCatalogueRequest(prov_admdvs=prov, items=items, last=True)

    return await stub.UpsertCatalogue(messages(), metadata=province(prov))


async def add_institutions(stub: Stub) -> None:
    await stub.UpsertInstitutions(
        catalogue_service_pb2.UpsertInstitutionsRequest(
            institutions=[
                catalogue_pb2.Institution(
                    fixmedins_code="H11010500001",
                    fixmedins_name="北京协和医院",
                    admdvs="110105",
                    level=3,
                    open_inpatient=True,
                    open_outpatient=True,
                    open_chronic=True,
                    begin_date=date_to_proto(dt.date(2020, 1, 1)),
                ),
                catalogue_pb2.Institution(
                    fixmedins_code="H11010800002",
                    fixmedins_name="海淀社区卫生服务中心",
                    admdvs="110108",
                    level=1,
                    open_outpatient=True,
                    begin_date=date_to_proto(dt.date(2020, 1, 1)),
                ),
            ]
        ),
        metadata=BEIJING,
    )


def fee(
    sn: str, code: str, amount_fen: int, cnt: str = "1", own: str = ""
) -> catalogue_service_pb2.FeeLine:
    return catalogue_service_pb2.FeeLine(
        feedetl_sn=sn,
        med_list_codg=code,
        medins_list_codg=own,
        cnt=cnt,
        pric=f"{amount_fen / 100 / float(cnt):.6f}",
        amount=money(amount_fen),
        fee_date=date_to_proto(TODAY),
    )


def classify(
    lines: list[catalogue_service_pb2.FeeLine],
    institution: str = "H11010500001",
    med_type: str = "21",
) -> catalogue_service_pb2.ClassifyFeeLinesRequest:
    return catalogue_service_pb2.ClassifyFeeLinesRequest(
        fixmedins_code=institution, med_type=med_type, lines=lines
    )


def summary(reply: catalogue_service_pb2.ClassifyFeeLinesResponse) -> list[tuple[object, ...]]:
    return [
        (
            line.feedetl_sn,
            line.fulamt_ownpay_amt.amount_fen,
            line.overlmt_amt.amount_fen,
            line.preselfpay_amt.amount_fen,
            line.inscp_scp_amt.amount_fen,
            line.non_payable_reason,
        )
        for line in reply.lines
    ]


async def test_every_class_cap_restriction_and_date_is_split_to_the_fen(
    catalogue: Catalogue,
) -> None:
    stub = catalogue.stub
    await add_institutions(stub)
    version = await upload(stub, ITEMS)
    assert (version.version, version.item_count, version.changed_count) == (1, 7, 7)
    reply = await stub.ClassifyFeeLines(
        classify(
            [
                fee("1", "A001", 3252),
                fee("2", "B001", 3177),
                fee("3", "B002", 4000, cnt="3"),
                fee("4", "C001", 999),
                fee("5", "L003", 500),
                fee("6", "T021", 600),
                fee("7", "OLD1", 700),
                fee("8", "NOPE", 800),
            ],
            med_type="14",
        )
    )
    assert reply.catalogue_version == 1 and reply.prov_admdvs == "110000"
    assert summary(reply) == [
        ("1", 0, 0, 0, 3252, 0),
        ("2", 0, 0, 318, 2859, 0),
        ("3", 0, 250, 188, 3562, 0),
        ("4", 999, 0, 0, 0, REASON.NON_PAYABLE_REASON_CLASS_C),
        ("5", 0, 0, 0, 500, 0),
        ("6", 600, 0, 0, 0, REASON.NON_PAYABLE_REASON_MEDICAL_TYPE_RESTRICTION),
        ("7", 700, 0, 0, 0, REASON.NON_PAYABLE_REASON_NOT_EFFECTIVE),
        ("8", 800, 0, 0, 0, REASON.NON_PAYABLE_REASON_NOT_IN_CATALOGUE),
    ]
    assert reply.lines[1].item_class == B and reply.lines[1].selfpay_prop == "0.10"
    assert reply.lines[2].price_cap.amount_fen == 1250
    low = await stub.ClassifyFeeLines(classify([fee("5", "L003", 500)], "H11010800002"))
    assert summary(low) == [("5", 500, 0, 0, 0, REASON.NON_PAYABLE_REASON_LEVEL_RESTRICTION)]


async def test_a_new_version_is_served_at_once_and_never_mixed(catalogue: Catalogue) -> None:
    stub = catalogue.stub
    await add_institutions(stub)
    await upload(stub, ITEMS)
    lines = [fee("1", "A001", 1000), fee("2", "B001", 1000), fee("3", "C001", 1000)]
    assert [
        line.inscp_scp_amt.amount_fen
        for line in (await stub.ClassifyFeeLines(classify(lines))).lines
    ] == [1000, 900, 0]
    changed = [
        catalogue_item("A001", B, "0.20"),
        catalogue_item("B001"),
        catalogue_item("C001", B, "0.50"),
    ]
    version = await upload(stub, changed)
    assert (version.version, version.changed_count, version.removed_count) == (2, 3, 4)
    reply = await stub.ClassifyFeeLines(classify(lines))
    assert reply.catalogue_version == 2
    assert [line.inscp_scp_amt.amount_fen for line in reply.lines] == [800, 1000, 500]
    old = await stub.GetCatalogueItem(
        catalogue_service_pb2.GetCatalogueItemRequest(
            prov_admdvs="110000", med_list_codg="A001", version=1
        )
    )
    assert old.item_class == A
    versions = await stub.ListCatalogueVersions(
        catalogue_service_pb2.ListCatalogueVersionsRequest(prov_admdvs="110000", page_size=1)
    )
    assert [v.version for v in versions.versions] == [2] and versions.next_page_token


async def test_download_since_a_version_brings_changes_and_removals(catalogue: Catalogue) -> None:
    stub = catalogue.stub
    await upload(stub, ITEMS)
    await upload(stub, [*ITEMS[:5], catalogue_item("A001", B, "0.30"), catalogue_item("NEW1")][1:])
    everything = [
        page
        async for page in stub.DownloadCatalogue(
            catalogue_service_pb2.DownloadCatalogueRequest(prov_admdvs="110000", page_size=2)
        )
    ]
    assert [page.last_page for page in everything] == [False, False, False, True]
    codes = [item.med_list_codg for page in everything for item in page.items]
    assert codes == sorted(["A001", "B001", "B002", "C001", "L003", "NEW1"])
    since_one = [
        page
        async for page in stub.DownloadCatalogue(
            catalogue_service_pb2.DownloadCatalogueRequest(prov_admdvs="110000", since_version=1)
        )
    ]
    assert len(since_one) == 1 and since_one[0].version == 2
    assert [item.med_list_codg for item in since_one[0].items] == ["A001", "NEW1"]
    assert list(since_one[0].removed_codes) == ["OLD1", "T021"]


async def test_hospital_codes_map_to_national_codes(catalogue: Catalogue) -> None:
    stub = catalogue.stub
    await add_institutions(stub)
    await upload(stub, ITEMS)
    await stub.UpsertItemMappings(
        catalogue_service_pb2.UpsertItemMappingsRequest(
            fixmedins_code="H11010500001",
            mappings=[catalogue_pb2.ItemMapping(medins_list_codg="XY-778", med_list_codg="B001")],
        ),
        metadata=BEIJING,
    )
    reply = await stub.ClassifyFeeLines(classify([fee("1", "", 3177, own="XY-778")]))
    assert reply.lines[0].med_list_codg == "B001"
    assert summary(reply) == [("1", 0, 0, 318, 2859, 0)]


async def test_a_line_off_by_more_than_one_fen_is_refused_naming_it(catalogue: Catalogue) -> None:
    stub = catalogue.stub
    await add_institutions(stub)
    await upload(stub, ITEMS)
    bad = fee("L-17", "A001", 1000)
    bad.pric = "9.98"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ClassifyFeeLines(classify([fee("1", "A001", 100), bad]))
    info = error_info(raised.value)
    assert info is not None and info.reason == "LINE_AMOUNT_MISMATCH"
    assert info.metadata["feedetlSn"] == "L-17"
    assert "line L-17" in (raised.value.details() or "")


async def test_writes_are_refused_outside_the_callers_province(catalogue: Catalogue) -> None:
    stub = catalogue.stub

    async def messages() -> AsyncIterator[catalogue_service_pb2.UpsertCatalogueRequest]:
        yield catalogue_service_pb2.UpsertCatalogueRequest(
            prov_admdvs="120000", items=ITEMS, last=True
        )

    assert (await refusal(stub.UpsertCatalogue(messages(), metadata=BEIJING)))[
        1
    ] == "AREA_NOT_OWNED"
    assert (await refusal(stub.ClassifyFeeLines(classify([fee("1", "A001", 1)], "H99999900009"))))[
        1
    ] == "INSTITUTION_NOT_FOUND"


async def test_search_finds_open_institutions_of_a_city(catalogue: Catalogue) -> None:
    stub = catalogue.stub
    await add_institutions(stub)
    inpatient = await stub.SearchInstitutions(
        catalogue_service_pb2.SearchInstitutionsRequest(admdvs="110000", open_for_med_type="21")
    )
    assert [i.fixmedins_code for i in inpatient.institutions] == ["H11010500001"]
    by_name = await stub.SearchInstitutions(
        catalogue_service_pb2.SearchInstitutionsRequest(admdvs="110100", name_contains="社区")
    )
    assert [i.level for i in by_name.institutions] == [1]
    paged = await stub.SearchInstitutions(
        catalogue_service_pb2.SearchInstitutionsRequest(page_size=1)
    )
    assert len(paged.institutions) == 1 and paged.next_page_token
    rest = await stub.SearchInstitutions(
        catalogue_service_pb2.SearchInstitutionsRequest(
            page_size=1, page_token=paged.next_page_token
        )
    )
    assert [i.fixmedins_code for i in rest.institutions] == ["H11010800002"]


async def test_classification_keeps_answering_when_redis_goes_away(catalogue: Catalogue) -> None:
    if catalogue.proxy is None:
        pytest.skip("this backend has no Redis")
    stub = catalogue.stub
    await add_institutions(stub)
    await upload(stub, ITEMS)
    lines = [fee("1", "A001", 3252), fee("2", "B001", 3177)]
    warm = await stub.ClassifyFeeLines(classify(lines))
    await catalogue.proxy.stop()  # Redis is gone from the service's point of view
    cold = await stub.ClassifyFeeLines(classify(lines))
    again = await stub.ClassifyFeeLines(classify(lines))
    assert (
        summary(cold)
        == summary(warm)
        == summary(again)
        == [
            ("1", 0, 0, 0, 3252, 0),
            ("2", 0, 0, 318, 2859, 0),
        ]
    )
    stats = await stub.GetCacheStats(catalogue_service_pb2.GetCacheStatsRequest())
    assert stats.redis_errors >= 1 and stats.hits > 0


async def test_an_upload_without_its_last_message_makes_no_version(catalogue: Catalogue) -> None:
    stub = catalogue.stub

    async def unfinished() -> AsyncIterator[catalogue_service_pb2.UpsertCatalogueRequest]:
        yield catalogue_service_pb2.UpsertCatalogueRequest(prov_admdvs="110000", items=ITEMS)

    refused = stub.UpsertCatalogue(unfinished(), metadata=BEIJING)
    assert (await refusal(refused)) == (grpc.StatusCode.ABORTED, "UPLOAD_INCOMPLETE")
    versions = await stub.ListCatalogueVersions(
        catalogue_service_pb2.ListCatalogueVersionsRequest(prov_admdvs="110000")
    )
    assert list(versions.versions) == []
