"""FilingService over gRPC on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.common.bundle import BundleInvalid
from services.common.runtime import open_storage
from services.common.values import date_to_proto, today_in_china
from services.demo.bundle import write_demo_bundle
from services.filing.bundle import load_filings
from services.filing.config import FilingSettings
from services.filing.logic import add_months
from services.filing.models import Base
from services.filing.server import MIGRATIONS_DIR, build_servicer, registrar
from services.identity.bundle import iter_persons
from tests.bundle_files import cell, set_cell
from tests.harness import province, refusal, serving

if TYPE_CHECKING:
    Stub = filing_service_pb2_grpc.FilingServiceAsyncStub
CATEGORY = filing_pb2.FilingCategory
STATUS = filing_pb2.FilingStatus
HEBEI = province("130000")
# Hebei pooling areas lock long-term filings for 6 months; Jiangsu's (320000) set no lock.
NO_LOCK = "320000"


@pytest.fixture
async def filing(
    database_url: str, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[Stub]:
    settings = FilingSettings(
        database_url=database_url, data_dir=tmp_path, lock_months_by_area={NO_LOCK: 0}
    )
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    async with serving(
        settings, storage, registrar(build_servicer(settings, storage)), tracer_provider
    ) as channel:
        yield filing_service_pb2_grpc.FilingServiceStub(channel)


def create(
    psn_no: str = "P1",
    *,
    category: int = CATEGORY.FILING_CATEGORY_REFERRAL,
    insured: str = "131000",
    dest: str = "110000",
    request_id: str = "",
    begin: dt.date | None = None,
    end: dt.date | None = None,
) -> filing_service_pb2.CreateFilingRequest:
    request = filing_service_pb2.CreateFilingRequest(
        request_id=request_id,
        psn_no=psn_no,
        category=category,  # type: ignore[arg-type]
        insuplc_admdvs=insured,
        dest_admdvs=dest,
        channel=filing_pb2.FILING_CHANNEL_APP,
    )
    if begin:
        request.begin_date.CopyFrom(date_to_proto(begin))
    if end:
        request.end_date.CopyFrom(date_to_proto(end))
    return request


def find(psn_no: str, area: str, day: dt.date) -> filing_service_pb2.FindEffectiveFilingRequest:
    return filing_service_pb2.FindEffectiveFilingRequest(
        psn_no=psn_no, treatment_admdvs=area, date=date_to_proto(day)
    )


async def test_temporary_filing_is_active_at_once_for_six_months(filing: Stub) -> None:
    made = await filing.CreateFiling(create(), metadata=HEBEI)
    today = today_in_china()
    assert made.status == STATUS.FILING_STATUS_ACTIVE
    assert made.filing_id.startswith("F") and len(made.filing_id) == 21
    assert made.end_date == date_to_proto(add_months(today, 6))
    assert (await filing.FindEffectiveFiling(find("P1", "110105", today))).filing_id == (
        made.filing_id
    )
    assert (
        await filing.GetFiling(filing_service_pb2.GetFilingRequest(filing_id=made.filing_id))
        == made
    )


async def test_new_filing_supersedes_the_active_one(filing: Stub) -> None:
    first = await filing.CreateFiling(create(), metadata=HEBEI)
    second = await filing.CreateFiling(create(dest="510100"), metadata=HEBEI)
    old = await filing.GetFiling(filing_service_pb2.GetFilingRequest(filing_id=first.filing_id))
    assert old.status == STATUS.FILING_STATUS_SUPERSEDED
    assert old.superseded_by == second.filing_id
    today = today_in_china()
    assert (await refusal(filing.FindEffectiveFiling(find("P1", "110105", today))))[1] == (
        "FILING_REQUIRED"
    )
    assert (await filing.FindEffectiveFiling(find("P1", "510104", today))).filing_id == (
        second.filing_id
    )


async def test_long_term_filing_is_locked_where_the_insured_area_says_so(filing: Stub) -> None:
    long_term = CATEGORY.FILING_CATEGORY_RETIRED_RELOCATED
    locked = await filing.CreateFiling(create(category=long_term), metadata=HEBEI)
    assert not locked.HasField("end_date")
    assert await refusal(filing.CreateFiling(create(dest="510000"), metadata=HEBEI)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "FILING_LOCKED",
    )
    assert (
        await refusal(
            filing.RevokeFiling(
                filing_service_pb2.RevokeFilingRequest(filing_id=locked.filing_id), metadata=HEBEI
            )
        )
    )[1] == "FILING_LOCKED"
    jiangsu = province(NO_LOCK)
    free = await filing.CreateFiling(
        create("P2", category=long_term, insured="320100"), metadata=jiangsu
    )
    revoked = await filing.RevokeFiling(
        filing_service_pb2.RevokeFilingRequest(filing_id=free.filing_id, reason="moved back"),
        metadata=jiangsu,
    )
    assert revoked.status == STATUS.FILING_STATUS_REVOKED and revoked.HasField("end_time")


async def test_temporary_filing_can_be_revoked_any_time_once(filing: Stub) -> None:
    made = await filing.CreateFiling(create(), metadata=HEBEI)
    revoke = filing_service_pb2.RevokeFilingRequest(filing_id=made.filing_id)
    assert (await filing.RevokeFiling(revoke, metadata=HEBEI)).status == (
        STATUS.FILING_STATUS_REVOKED
    )
    assert (await refusal(filing.RevokeFiling(revoke, metadata=HEBEI)))[1] == "FILING_NOT_ACTIVE"
    assert (await refusal(filing.FindEffectiveFiling(find("P1", "110105", today_in_china()))))[
        1
    ] == "FILING_REQUIRED"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (create(end=today_in_china() + dt.timedelta(days=30)), "TEMPORARY_FILING_TOO_SHORT"),
        (
            create(
                category=CATEGORY.FILING_CATEGORY_LONG_TERM_RESIDENT,
                end=today_in_china() + dt.timedelta(days=400),
            ),
            "LONG_TERM_FILING_OPEN_ENDED",
        ),
        (create(dest="130100"), "NOT_CROSS_PROVINCE"),
        (create(category=0), "FILING_INVALID"),
        (create(psn_no=""), "FILING_INVALID"),
    ],
)
async def test_invalid_filings_are_refused(
    filing: Stub, request_: filing_service_pb2.CreateFilingRequest, reason: str
) -> None:
    assert await refusal(filing.CreateFiling(request_, metadata=HEBEI)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
    )


async def test_province_files_only_for_its_own_insured(filing: Stub) -> None:
    assert (await refusal(filing.CreateFiling(create(), metadata=province("510000"))))[1] == (
        "AREA_NOT_OWNED"
    )
    assert (await refusal(filing.CreateFiling(create())))[1] == "CALLER_UNKNOWN"


async def test_request_id_makes_creation_idempotent(filing: Stub) -> None:
    first = await filing.CreateFiling(create(request_id="r-1"), metadata=HEBEI)
    again = await filing.CreateFiling(create(request_id="r-1"), metadata=HEBEI)
    assert again == first
    assert await refusal(
        filing.CreateFiling(create(request_id="r-1", dest="510100"), metadata=HEBEI)
    ) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_CONFLICT",
    )
    listed = await filing.ListFilings(filing_service_pb2.ListFilingsRequest(psn_no="P1"))
    assert [f.filing_id for f in listed.filings] == [first.filing_id]


async def test_filing_made_after_admission_covers_it_when_validity_does(filing: Stub) -> None:
    today = today_in_china()
    admitted = today - dt.timedelta(days=3)
    await filing.CreateFiling(create(begin=admitted), metadata=HEBEI)
    assert (await filing.FindEffectiveFiling(find("P1", "110101", admitted))).psn_no == "P1"
    assert (
        await refusal(
            filing.FindEffectiveFiling(find("P1", "110101", admitted - dt.timedelta(days=1)))
        )
    )[1] == "FILING_REQUIRED"


async def test_concurrent_creations_leave_exactly_one_active_filing(filing: Stub) -> None:
    destinations = ["110000", "120000", "310000", "510000", "440000", "500000"]
    made = await asyncio.gather(
        *(filing.CreateFiling(create(dest=dest), metadata=HEBEI) for dest in destinations)
    )
    listed = await filing.ListFilings(filing_service_pb2.ListFilingsRequest(psn_no="P1"))
    statuses = [f.status for f in listed.filings]
    assert len(listed.filings) == len(destinations)
    assert statuses.count(STATUS.FILING_STATUS_ACTIVE) == 1
    assert statuses.count(STATUS.FILING_STATUS_SUPERSEDED) == len(destinations) - 1
    assert {f.filing_id for f in made} == {f.filing_id for f in listed.filings}


async def test_list_by_destination_pages_without_overlap(filing: Stub) -> None:
    for index in range(7):
        await filing.CreateFiling(create(f"P{index}", dest="510100"), metadata=HEBEI)
    await filing.CreateFiling(create("Q1", dest="440300"), metadata=HEBEI)
    seen: list[str] = []
    token = ""
    while True:
        page = await filing.ListFilings(
            filing_service_pb2.ListFilingsRequest(
                dest_admdvs="510000", page_size=3, page_token=token
            )
        )
        seen += [f.psn_no for f in page.filings]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"P{index}" for index in range(7)]
    bad = filing_service_pb2.ListFilingsRequest(dest_admdvs="510000", page_token="bogus")
    assert (await refusal(filing.ListFilings(bad)))[1] == "PAGE_TOKEN_INVALID"


async def test_watch_resumes_after_a_disconnect_without_gaps_or_duplicates(filing: Stub) -> None:
    for index in range(3):
        await filing.CreateFiling(create(f"P{index}", dest="510100"), metadata=HEBEI)
    await filing.CreateFiling(create("X", dest="440300"), metadata=HEBEI)  # not for Sichuan
    received: list[filing_pb2.FilingChange] = []
    watch = filing.WatchFilings(filing_service_pb2.WatchFilingsRequest(dest_admdvs="510100"))
    async for change in watch:
        received.append(change)
        if len(received) == 2:
            break
    watch.cancel()  # the client goes away after two changes
    # While it is away: one more filing, and P0 moves to Chongqing (superseding its Sichuan one).
    await filing.CreateFiling(create("P3", dest="510000"), metadata=HEBEI)
    await filing.CreateFiling(create("P0", dest="500000"), metadata=HEBEI)
    resumed = filing.WatchFilings(
        filing_service_pb2.WatchFilingsRequest(
            dest_admdvs="510100", after_cursor=received[-1].cursor
        )
    )
    async for change in resumed:
        received.append(change)
        if len(received) == 5:
            break
    # A change made while the stream is open arrives at once.
    await filing.CreateFiling(create("P4", dest="510104"), metadata=HEBEI)
    async for change in resumed:
        received.append(change)
        break
    resumed.cancel()
    cursors = [change.cursor for change in received]
    assert cursors == sorted(set(cursors))
    summary = [(c.filing.psn_no, c.filing.dest_admdvs, c.change_type) for c in received]
    created, superseded = (
        filing_pb2.FILING_CHANGE_TYPE_CREATED,
        filing_pb2.FILING_CHANGE_TYPE_SUPERSEDED,
    )
    assert summary == [
        ("P0", "510100", created),
        ("P1", "510100", created),
        ("P2", "510100", created),
        ("P3", "510000", created),
        ("P0", "510100", superseded),
        ("P4", "510104", created),
    ]


async def test_a_watch_of_every_area_sees_all_and_heartbeats_mark_the_end_of_the_log(
    filing: Stub,
) -> None:
    await filing.CreateFiling(create("P0", dest="510100"), metadata=HEBEI)
    await filing.CreateFiling(create("P1", dest="440300"), metadata=HEBEI)
    watch = filing.WatchFilings(
        filing_service_pb2.WatchFilingsRequest(dest_admdvs="000000", heartbeats=True)
    )
    received: list[filing_pb2.FilingChange] = []
    async for change in watch:
        received.append(change)
        if not change.HasField("filing"):
            break  # the first heartbeat: the log was read to its end
    await filing.CreateFiling(create("P0", dest="310000"), metadata=HEBEI)  # supersedes
    async for change in watch:
        received.append(change)
        if not change.HasField("filing") and sum(c.HasField("filing") for c in received) == 4:
            break
    watch.cancel()
    created, superseded = (
        filing_pb2.FILING_CHANGE_TYPE_CREATED,
        filing_pb2.FILING_CHANGE_TYPE_SUPERSEDED,
    )
    changes = [c for c in received if c.HasField("filing")]
    assert [(c.filing.psn_no, c.filing.dest_admdvs, c.change_type) for c in changes] == [
        ("P0", "510100", created),
        ("P1", "440300", created),
        ("P0", "510100", superseded),
        ("P0", "310000", created),
    ]
    # A heartbeat (nothing but a cursor) came once the first two were read, and one closes the
    # stream; each carries the last cursor read, so a watch resumed after it misses nothing.
    assert not received[2].HasField("filing") and not received[-1].HasField("filing")
    for before, heartbeat in itertools.pairwise(received):
        if not heartbeat.HasField("filing"):
            assert heartbeat.change_type == filing_pb2.FILING_CHANGE_TYPE_UNSPECIFIED
            assert heartbeat.cursor == before.cursor
    bad = filing.WatchFilings(filing_service_pb2.WatchFilingsRequest(dest_admdvs="all"))
    assert (await refusal(bad.read()))[1] == "INVALID_ARGUMENT"


async def test_import_applies_a_batch_once(filing: Stub) -> None:
    batch = filing_service_pb2.ImportFilingsRequest(
        filings=[create(f"P{i}", request_id=f"bundle:{i}") for i in range(5)], last=True
    )

    async def stream() -> AsyncIterator[filing_service_pb2.ImportFilingsRequest]:
        yield batch

    first = await filing.ImportFilings(stream(), metadata=HEBEI)
    again = await filing.ImportFilings(stream(), metadata=HEBEI)
    assert (first.created_count, first.unchanged_count) == (5, 0)
    assert (again.created_count, again.unchanged_count) == (0, 5)
    broken = filing_service_pb2.ImportFilingsRequest(
        filings=[create("N1", request_id="n1"), create("N2", request_id="n2", dest="130100")],
        last=True,
    )

    async def broken_stream() -> AsyncIterator[filing_service_pb2.ImportFilingsRequest]:
        yield broken

    assert (await refusal(filing.ImportFilings(broken_stream(), metadata=HEBEI)))[1] == (
        "NOT_CROSS_PROVINCE"
    )
    listed = await filing.ListFilings(filing_service_pb2.ListFilingsRequest(psn_no="N1"))
    assert list(listed.filings) == []  # the import is all or nothing


async def test_an_import_is_written_message_by_message_and_an_unfinished_one_keeps_nothing(
    filing: Stub,
) -> None:
    first = [create(f"P{i}", request_id=f"bundle:{i}") for i in range(3)]
    # P0 again in the second message: its filing is superseded by the later one.
    second = [create("P0", request_id="bundle:again", dest="510104"), create("P3")]

    async def stream(last: bool) -> AsyncIterator[filing_service_pb2.ImportFilingsRequest]:
        yield filing_service_pb2.ImportFilingsRequest(filings=first)
        yield filing_service_pb2.ImportFilingsRequest(filings=second, last=last)

    unfinished = filing.ImportFilings(stream(last=False), metadata=HEBEI)
    assert (await refusal(unfinished)) == (grpc.StatusCode.ABORTED, "UPLOAD_INCOMPLETE")
    listed = await filing.ListFilings(filing_service_pb2.ListFilingsRequest(psn_no="P0"))
    assert list(listed.filings) == []
    done = await filing.ImportFilings(stream(last=True), metadata=HEBEI)
    assert (done.created_count, done.unchanged_count) == (5, 0)
    listed = await filing.ListFilings(filing_service_pb2.ListFilingsRequest(psn_no="P0"))
    assert [(f.dest_admdvs, f.status) for f in listed.filings] == [
        ("510104", STATUS.FILING_STATUS_ACTIVE),
        ("110000", STATUS.FILING_STATUS_SUPERSEDED),
    ]


async def test_filings_csv_with_a_bad_row_late_in_the_file_loads_nothing(
    filing: Stub, tmp_path: Path
) -> None:
    bundle_dir = write_demo_bundle(tmp_path / "bundle", persons=2_500, seed=5)
    insured_area: dict[str, str] = {}
    for _ in iter_persons(bundle_dir / "persons.csv", [], insured_area):
        pass
    filings_file = bundle_dir / "filings.csv"
    set_cell(filings_file, 2_300, "category", "holiday")
    looked_up: list[set[str]] = []

    async def learn(psn_nos: set[str]) -> None:
        looked_up.append(psn_nos)

    with pytest.raises(BundleInvalid) as raised:
        await load_filings(filing, filings_file, insured_area, learn, lambda _: None)
    [problem] = raised.value.problems
    assert (problem.line, problem.column) == (2_300, "category")
    assert looked_up == [set(), set(), set()]  # every person was in persons.csv
    listed = await filing.ListFilings(
        filing_service_pb2.ListFilingsRequest(psn_no=cell(filings_file, 2, "psn_no"))
    )
    assert list(listed.filings) == []
    set_cell(filings_file, 2_300, "category", "referral")
    loaded = await load_filings(filing, filings_file, insured_area, learn, lambda _: None)
    assert (loaded.created_count, loaded.unchanged_count) == (2_500, 0)
