"""filings.csv of a bundle: parsing, checking, and loading through FilingService.ImportFilings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc

from services.common import bundle
from services.common.bundle import Column, Problem, Row
from services.common.categories import FILING_CATEGORIES
from services.common.fingerprint import fingerprint
from services.common.values import date_to_proto

FILING_COLUMNS = {
    "psn_no": Column(bundle.text(30)),
    "category": Column(bundle.choice(*FILING_CATEGORIES)),
    "dest_admdvs": Column(bundle.area),
    "begndate": Column(bundle.date),
    "enddate": Column(bundle.date, required=False),
}


def read_filing_rows(path: Path) -> list[Row]:
    """The checked rows of filings.csv."""
    return bundle.read_csv(path, FILING_COLUMNS)


def filing_request(
    file_name: str, row: Row, insured_area: Mapping[str, str], problems: list[Problem]
) -> filing_service_pb2.CreateFilingRequest | None:
    """The create request for a filing row (None, with the problem added, if it has one).

    `insured_area` maps psn_no to the insured pooling area. The request_id is derived from the
    row, so loading the same bundle twice changes nothing.
    """
    values = row.values
    area = insured_area.get(values["psn_no"])
    if area is None:
        problems.append(Problem(file_name, row.line, "psn_no", "no such insured person"))
        return None
    request = filing_service_pb2.CreateFilingRequest(
        psn_no=values["psn_no"],
        category=FILING_CATEGORIES[values["category"]],
        insuplc_admdvs=area,
        dest_admdvs=values["dest_admdvs"],
        begin_date=date_to_proto(values["begndate"]),
        channel=filing_pb2.FILING_CHANNEL_COUNTER,
    )
    if values["enddate"] is not None:
        if values["enddate"] < values["begndate"]:
            problems.append(Problem(file_name, row.line, "enddate", "is before begndate"))
            return None
        request.end_date.CopyFrom(date_to_proto(values["enddate"]))
    request.request_id = f"bundle:{fingerprint(request)[:48]}"
    return request


async def load_filings(
    stub: filing_service_pb2_grpc.FilingServiceAsyncStub,
    path: Path,
    insured_area: dict[str, str],
    learn_insured_areas: Callable[[set[str]], Awaitable[None]],
    progress: Callable[[int], object],
) -> filing_service_pb2.ImportFilingsResponse:
    """Stream filings.csv into one ImportFilings call (one transaction) while reading it.

    Persons missing from insured_area are looked up, a chunk at a time, by learn_insured_areas
    (which adds them). Raises BundleInvalid, with nothing loaded, when the file has problems.
    """
    problems: list[Problem] = []

    async def messages() -> AsyncIterator[tuple[filing_service_pb2.ImportFilingsRequest, int]]:
        for rows in bundle.chunked(bundle.iter_csv(path, FILING_COLUMNS, problems)):
            psn_nos = {row.values["psn_no"] for row in rows}
            await learn_insured_areas({psn_no for psn_no in psn_nos if psn_no not in insured_area})
            requests = [filing_request(path.name, row, insured_area, problems) for row in rows]
            chunk = [request for request in requests if request is not None]
            yield filing_service_pb2.ImportFilingsRequest(filings=chunk), len(rows)

    return await bundle.send_while_reading(stub.ImportFilings, path, messages(), problems, progress)
