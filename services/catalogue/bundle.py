"""institutions.csv and catalogue.csv of a bundle: parsing, checking, loading through
CatalogueService (institutions in one call; each province's catalogue as one new version).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc

from services.catalogue import logic
from services.common import bundle
from services.common.bundle import BundleInvalid, Column, Problem
from services.common.callers import caller_metadata
from services.common.values import date_to_proto, money, province_of

_FLAG = bundle.choice("0", "1")
INSTITUTION_COLUMNS = {
    "fixmedins_code": Column(bundle.text(30)),
    "fixmedins_name": Column(bundle.text(200)),
    "admdvs": Column(bundle.area),
    "level": Column(bundle.choice("1", "2", "3")),
    "open_inpatient": Column(_FLAG),
    "open_outpatient": Column(_FLAG),
    "open_chronic": Column(_FLAG),
}
CATALOGUE_COLUMNS = {
    "prov_admdvs": Column(bundle.area),
    "list_type": Column(bundle.choice(*logic.LIST_TYPES)),
    "med_list_codg": Column(bundle.text(50)),
    "name": Column(bundle.text(200)),
    "chrgitm_lv": Column(bundle.choice("01", "02", "03")),
    "selfpay_prop": Column(bundle.ratio),
    "pric_uplmt_amt": Column(bundle.amount_fen, required=False),
    "min_level": Column(bundle.choice("1", "2", "3"), required=False),
    "med_types": Column(bundle.codes(), required=False),
    "begndate": Column(bundle.date),
    "enddate": Column(bundle.date, required=False),
}


def read_institutions(path: Path) -> list[catalogue_pb2.Institution]:
    """The institutions of institutions.csv."""
    problems: list[Problem] = []
    institutions = []
    for row in bundle.read_csv(path, INSTITUTION_COLUMNS):
        values = row.values
        problem = logic.institution_problem(
            values["fixmedins_code"],
            values["fixmedins_name"],
            values["admdvs"],
            int(values["level"]),
        )
        if problem:
            problems.append(Problem(path.name, row.line, "", problem))
            continue
        institutions.append(
            catalogue_pb2.Institution(
                fixmedins_code=values["fixmedins_code"],
                fixmedins_name=values["fixmedins_name"],
                admdvs=values["admdvs"],
                level=int(values["level"]),
                open_inpatient=values["open_inpatient"] == "1",
                open_outpatient=values["open_outpatient"] == "1",
                open_chronic=values["open_chronic"] == "1",
                begin_date=date_to_proto(bundle.date("2000-01-01")),
            )
        )
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return institutions


def read_catalogue(path: Path) -> dict[str, list[catalogue_pb2.CatalogueItem]]:
    """The items of catalogue.csv by province."""
    problems: list[Problem] = []
    by_province: dict[str, list[catalogue_pb2.CatalogueItem]] = defaultdict(list)
    seen: dict[tuple[str, str], int] = {}
    for row in bundle.read_csv(path, CATALOGUE_COLUMNS):
        values = row.values
        prov, code = values["prov_admdvs"], values["med_list_codg"]
        if province_of(prov) != prov:
            problems.append(Problem(path.name, row.line, "prov_admdvs", "must be a PP0000 code"))
        if (prov, code) in seen:
            problems.append(
                Problem(path.name, row.line, "med_list_codg", f"repeats line {seen[prov, code]}")
            )
        seen[prov, code] = row.line
        problem = logic.item_problem(
            code,
            values["list_type"],
            values["name"],
            int(values["chrgitm_lv"]),
            str(values["selfpay_prop"]),
            values["pric_uplmt_amt"],
            int(values["min_level"] or 0),
            values["begndate"],
            values["enddate"],
        )
        if problem:
            problems.append(Problem(path.name, row.line, "", problem))
            continue
        item = catalogue_pb2.CatalogueItem(
            prov_admdvs=prov,
            list_type=values["list_type"],
            med_list_codg=code,
            name=values["name"],
            item_class=int(values["chrgitm_lv"]),  # type: ignore[arg-type]
            selfpay_prop=str(values["selfpay_prop"]),
            min_level=int(values["min_level"] or 0),
            med_types=values["med_types"] or (),
            begin_date=date_to_proto(values["begndate"]),
        )
        if values["pric_uplmt_amt"] is not None:
            item.price_cap.CopyFrom(money(values["pric_uplmt_amt"]))
        if values["enddate"] is not None:
            item.end_date.CopyFrom(date_to_proto(values["enddate"]))
        by_province[prov].append(item)
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return dict(by_province)


async def load_institutions(
    stub: catalogue_service_pb2_grpc.CatalogueServiceAsyncStub,
    institutions: list[catalogue_pb2.Institution],
) -> catalogue_service_pb2.UpsertInstitutionsResponse:
    """Send every institution in one call (one transaction)."""
    return await stub.UpsertInstitutions(
        catalogue_service_pb2.UpsertInstitutionsRequest(institutions=institutions),
        metadata=caller_metadata("national"),
        timeout=120,
    )


async def load_catalogue(
    stub: catalogue_service_pb2_grpc.CatalogueServiceAsyncStub,
    prov: str,
    items: list[catalogue_pb2.CatalogueItem],
    progress: Callable[[int], object],
) -> catalogue_pb2.CatalogueVersion:
    """Upload one province's catalogue as a new version (one transaction)."""

    messages = bundle.stream_in_chunks(
        items,
        lambda chunk: catalogue_service_pb2.UpsertCatalogueRequest(prov_admdvs=prov, items=chunk),
        progress,
    )
    return await stub.UpsertCatalogue(messages, metadata=caller_metadata("national"), timeout=600)
