"""filings.csv of a bundle: parsing, checking, and loading through FilingService.ImportFilings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc

from services.common import bundle
from services.common.bundle import BundleInvalid, Column, Problem, Row
from services.common.callers import caller_metadata
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


def filing_requests(
    file_name: str, rows: list[Row], insured_area: Mapping[str, str]
) -> list[filing_service_pb2.CreateFilingRequest]:
    """Create requests for filing rows; `insured_area` maps psn_no to the insured pooling area.

    Each request_id is derived from the row, so loading the same bundle twice changes nothing.
    """
    problems: list[Problem] = []
    requests: list[filing_service_pb2.CreateFilingRequest] = []
    for row in rows:
        values = row.values
        area = insured_area.get(values["psn_no"])
        if area is None:
            problems.append(Problem(file_name, row.line, "psn_no", "no such insured person"))
            continue
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
            request.end_date.CopyFrom(date_to_proto(values["enddate"]))
        digest = fingerprint(request)
        request.request_id = f"bundle:{digest[:48]}"
        requests.append(request)
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return requests


async def load_filings(
    stub: filing_service_pb2_grpc.FilingServiceAsyncStub,
    requests: list[filing_service_pb2.CreateFilingRequest],
    progress: Callable[[int], object],
) -> filing_service_pb2.ImportFilingsResponse:
    """Stream every filing in one ImportFilings call (one transaction)."""

    messages = bundle.stream_in_chunks(
        requests, lambda chunk: filing_service_pb2.ImportFilingsRequest(filings=chunk), progress
    )
    return await stub.ImportFilings(messages, metadata=caller_metadata("national"), timeout=600)
