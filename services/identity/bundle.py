"""regions.csv and persons.csv of a bundle: parsing, checking, loading through IdentityService."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from medsettle.type.v1 import area_pb2

from services.common import bundle
from services.common.bundle import BundleInvalid, Column, Problem, Row
from services.common.callers import caller_metadata
from services.common.values import date_to_proto, money, province_of
from services.identity import logic
from services.identity.errors import PersonRecordInvalid
from services.identity.servicer import person_from_proto

REGION_COLUMNS = {
    "admdvs": Column(bundle.area),
    "name": Column(bundle.text(100)),
    "prov_admdvs": Column(bundle.area),
}

PERSON_COLUMNS = {
    "psn_no": Column(bundle.text(30)),
    "certno": Column(bundle.text(18)),
    "psn_name": Column(bundle.text(50)),
    "gend": Column(bundle.choice("1", "2")),
    "brdy": Column(bundle.date),
    "insuplc_admdvs": Column(bundle.area),
    "insutype": Column(bundle.choice(*logic.INSUTYPES)),
    "psn_type": Column(bundle.choice(*logic.PSN_TYPES)),
    "psn_insu_stas": Column(bundle.choice("1", "2", "4")),
    "balc": Column(bundle.amount_fen, required=False),
    "idet_types": Column(bundle.codes(), required=False),
    "card_no": Column(bundle.text(20), required=False),
    "card_sn": Column(bundle.text(32), required=False),
    "card_status": Column(bundle.choice("normal", "lost", "frozen"), required=False),
}
_CARD_STATUS = {
    "normal": identity_pb2.CARD_STATUS_NORMAL,
    "lost": identity_pb2.CARD_STATUS_LOST,
    "frozen": identity_pb2.CARD_STATUS_FROZEN,
}
_PERSON_FIELDS = ("certno", "psn_name", "gend", "brdy")


def read_regions(path: Path) -> list[area_pb2.Area]:
    """The areas of regions.csv; prov_admdvs must be the code's own province."""
    rows = bundle.read_csv(path, REGION_COLUMNS)
    problems = [
        Problem(path.name, row.line, "prov_admdvs", f"must be {province_of(row.values['admdvs'])}")
        for row in rows
        if row.values["prov_admdvs"] != province_of(row.values["admdvs"])
    ]
    if problems:
        raise BundleInvalid(problems)
    return [area_pb2.Area(admdvs=row.values["admdvs"], name=row.values["name"]) for row in rows]


def read_persons(path: Path) -> list[identity_pb2.Person]:
    """Every person of persons.csv; raises BundleInvalid listing the problems."""
    problems: list[Problem] = []
    persons = list(iter_persons(path, problems, {}))
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return persons


def iter_persons(
    path: Path, problems: list[Problem], insured_area: dict[str, str]
) -> Iterator[identity_pb2.Person]:
    """The persons of persons.csv in file order, read one at a time.

    A person has one row per insurance record; those rows must be consecutive and agree on the
    person's own fields. `insured_area` is filled with psn_no -> insured pooling area for every
    person read (also used to find a person whose rows are not consecutive). Problems are
    appended to `problems`; a person with a problem is left out.
    """
    person: identity_pb2.Person | None = None
    first_line = 0
    found = 0
    for row in bundle.iter_csv(path, PERSON_COLUMNS, problems):
        values = row.values
        psn_no = values["psn_no"]
        if person is None or psn_no != person.psn_no:
            if person is not None:
                yield from _checked(path.name, person, first_line, problems, found)
            if psn_no in insured_area:
                problems.append(
                    Problem(path.name, row.line, "psn_no", "a person's rows must be consecutive")
                )
            # One string per pooling area, not per person: the map holds millions of persons.
            insured_area[psn_no] = sys.intern(values["insuplc_admdvs"])
            person = _new_person(values)
            first_line, found = row.line, len(problems)
        else:
            again = (
                values["certno"].upper(),
                values["psn_name"],
                values["gend"],
                date_to_proto(values["brdy"]),
            )
            for field, value in zip(_PERSON_FIELDS, again, strict=True):
                if getattr(person, field) != value:
                    problems.append(
                        Problem(path.name, row.line, field, f"differs from line {first_line}")
                    )
        _add_row(path.name, row, person, problems)
    if person is not None:
        yield from _checked(path.name, person, first_line, problems, found)


def _new_person(values: dict[str, Any]) -> identity_pb2.Person:
    return identity_pb2.Person(
        psn_no=values["psn_no"],
        psn_cert_type="01",
        certno=values["certno"].upper(),
        psn_name=values["psn_name"],
        gend=values["gend"],
        brdy=date_to_proto(values["brdy"]),
        naty="01",
    )


def _add_row(
    file_name: str, row: Row, person: identity_pb2.Person, problems: list[Problem]
) -> None:
    """Add a row's insurance record and card to its person."""
    values = row.values
    person.insurances.append(
        identity_pb2.Insurance(
            insutype=values["insutype"],
            psn_type=values["psn_type"],
            status=int(values["psn_insu_stas"]),  # type: ignore[arg-type]
            insuplc_admdvs=values["insuplc_admdvs"],
            balc=money(values["balc"] or 0),
            idet_types=values["idet_types"] or (),
        )
    )
    if values["card_no"] and all(card.card_no != values["card_no"] for card in person.cards):
        if not values["card_sn"]:
            problems.append(Problem(file_name, row.line, "card_sn", "needed with card_no"))
        person.cards.append(
            identity_pb2.Card(
                card_no=values["card_no"],
                card_sn=values["card_sn"] or "",
                status=_CARD_STATUS[values["card_status"] or "normal"],
            )
        )


def _checked(
    file_name: str,
    person: identity_pb2.Person,
    first_line: int,
    problems: list[Problem],
    found_before: int,
) -> Iterator[identity_pb2.Person]:
    """The person, once its rows are all read, if neither they nor the record have problems."""
    try:
        logic.validate_person(person_from_proto(person))
    except PersonRecordInvalid as error:
        problems.append(Problem(file_name, first_line, "", error.message))
    if len(problems) == found_before:
        yield person


async def load_regions(
    stub: identity_service_pb2_grpc.IdentityServiceAsyncStub, areas: list[area_pb2.Area]
) -> identity_service_pb2.UpsertAreasResponse:
    """Send every area in one call (one transaction), as the national platform."""
    return await stub.UpsertAreas(
        identity_service_pb2.UpsertAreasRequest(areas=areas), metadata=caller_metadata("national")
    )


async def load_persons(
    stub: identity_service_pb2_grpc.IdentityServiceAsyncStub,
    path: Path,
    insured_area: dict[str, str],
    progress: Callable[[int], object],
) -> identity_service_pb2.UpsertPersonsResponse:
    """Stream persons.csv into one UpsertPersons call (one transaction) while reading it.

    Fills insured_area (see iter_persons). Raises BundleInvalid, with nothing loaded, when the
    file has problems.
    """
    problems: list[Problem] = []

    async def messages() -> AsyncIterator[tuple[identity_service_pb2.UpsertPersonsRequest, int]]:
        for chunk in bundle.chunked(iter_persons(path, problems, insured_area)):
            rows = sum(len(person.insurances) for person in chunk)  # one row per insurance record
            yield identity_service_pb2.UpsertPersonsRequest(persons=chunk), rows

    return await bundle.send_while_reading(stub.UpsertPersons, path, messages(), problems, progress)
