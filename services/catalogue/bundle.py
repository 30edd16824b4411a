"""institutions.csv and catalogue.csv of a bundle: parsing, checking, loading through
CatalogueService (institutions in one call; each province's catalogue as one new version).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    """The items of catalogue.csv by province (the whole file in memory: for small files)."""
    province_counts(path)
    return dict(catalogue_by_province(path))


def province_counts(path: Path) -> dict[str, int]:
    """Check all of catalogue.csv, keeping no items; items per province, or BundleInvalid.

    The national file has 1.55 million items, which as messages take about 3 GB: the loader
    checks the file with this first, then reads it again a province at a time.
    """
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    for prov, _ in _catalogue_rows(path, problems, build=False):
        counts[prov] = counts.get(prov, 0) + 1
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return counts


def catalogue_by_province(path: Path) -> Iterator[tuple[str, list[catalogue_pb2.CatalogueItem]]]:
    """Each province's items, one province at a time (of a file province_counts accepted)."""
    problems: list[Problem] = []
    items = _catalogue_rows(path, problems, build=True)
    for prov, group in itertools.groupby(items, key=lambda pair: pair[0]):
        yield prov, [item for _, item in group if item is not None]
    if problems:  # the file changed since it was checked
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])


def _catalogue_rows(
    path: Path, problems: list[Problem], *, build: bool
) -> Iterator[tuple[str, catalogue_pb2.CatalogueItem | None]]:
    """(province, item) per good row, the item only when `build`; problems go to `problems`.

    A province's rows must be consecutive (as the national export writes them), so that a
    province can be sent as soon as its rows are read and duplicates are looked for within it.
    """
    done: set[str] = set()
    current = ""
    seen: dict[str, int] = {}
    for row in bundle.iter_csv(path, CATALOGUE_COLUMNS, problems):
        values = row.values
        prov, code = values["prov_admdvs"], values["med_list_codg"]
        if province_of(prov) != prov:
            problems.append(Problem(path.name, row.line, "prov_admdvs", "must be a PP0000 code"))
            continue
        if prov != current:
            if prov in done:
                problems.append(
                    Problem(
                        path.name, row.line, "prov_admdvs", "a province's rows must be consecutive"
                    )
                )
            done.add(current)
            current, seen = prov, {}
        if code in seen:
            problems.append(
                Problem(path.name, row.line, "med_list_codg", f"repeats line {seen[code]}")
            )
        seen[code] = row.line
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
        yield prov, _item(values) if build else None


def _item(values: dict[str, Any]) -> catalogue_pb2.CatalogueItem:
    item = catalogue_pb2.CatalogueItem(
        prov_admdvs=values["prov_admdvs"],
        list_type=values["list_type"],
        med_list_codg=values["med_list_codg"],
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
    return item


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
