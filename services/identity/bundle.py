"""regions.csv and persons.csv of a bundle: parsing, checking, loading through IdentityService."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from medsettle.type.v1 import area_pb2

from services.common import bundle
from services.common.bundle import BundleInvalid, Column, Problem
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
    """The persons of persons.csv: one row per insurance record, rows of a person agreeing."""
    rows = bundle.read_csv(path, PERSON_COLUMNS)
    persons: dict[str, identity_pb2.Person] = {}
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    for row in rows:
        values = row.values
        psn_no = values["psn_no"]
        person = persons.get(psn_no)
        if person is None:
            person = persons[psn_no] = identity_pb2.Person(
                psn_no=psn_no,
                psn_cert_type="01",
                certno=values["certno"].upper(),
                psn_name=values["psn_name"],
                gend=values["gend"],
                brdy=date_to_proto(values["brdy"]),
                naty="01",
            )
            first_line[psn_no] = row.line
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
                        Problem(
                            path.name, row.line, field, f"differs from line {first_line[psn_no]}"
                        )
                    )
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
                problems.append(Problem(path.name, row.line, "card_sn", "needed with card_no"))
            person.cards.append(
                identity_pb2.Card(
                    card_no=values["card_no"],
                    card_sn=values["card_sn"] or "",
                    status=_CARD_STATUS[values["card_status"] or "normal"],
                )
            )
    for psn_no, person in persons.items():
        try:
            logic.validate_person(person_from_proto(person))
        except PersonRecordInvalid as error:
            problems.append(Problem(path.name, first_line[psn_no], "", error.message))
    if problems:
        raise BundleInvalid(problems[: bundle.MAX_REPORTED])
    return list(persons.values())


async def load_regions(
    stub: identity_service_pb2_grpc.IdentityServiceAsyncStub, areas: list[area_pb2.Area]
) -> identity_service_pb2.UpsertAreasResponse:
    """Send every area in one call (one transaction), as the national platform."""
    return await stub.UpsertAreas(
        identity_service_pb2.UpsertAreasRequest(areas=areas), metadata=caller_metadata("national")
    )


async def load_persons(
    stub: identity_service_pb2_grpc.IdentityServiceAsyncStub,
    persons: list[identity_pb2.Person],
    progress: Callable[[int], object],
) -> identity_service_pb2.UpsertPersonsResponse:
    """Stream every person in one UpsertPersons call (one transaction)."""

    messages = bundle.stream_in_chunks(
        persons, lambda chunk: identity_service_pb2.UpsertPersonsRequest(persons=chunk), progress
    )
    return await stub.UpsertPersons(messages, metadata=caller_metadata("national"), timeout=600)
