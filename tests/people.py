"""Valid test persons: ID numbers with correct check characters, cards, insurance records."""

from __future__ import annotations

import datetime as dt

from medsettle.identity.v1 import identity_pb2

from services.common.values import date_to_proto, money
from services.identity.logic import make_id_number


def id_number(area: str, birth: dt.date, serial: int) -> str:
    """A GB 11643-valid ID number for area, birth date and a three-digit serial."""
    return make_id_number(area, birth, serial)


def person(
    psn_no: str,
    *,
    area: str = "131000",
    serial: int = 1,
    insutype: str = "310",
    psn_type: str = "retired",
    status: int = identity_pb2.INSURANCE_STATUS_ACTIVE,
    balc_fen: int = 100_000,
    card_no: str = "",
    card_status: int = identity_pb2.CARD_STATUS_NORMAL,
    idet_types: tuple[str, ...] = (),
) -> identity_pb2.Person:
    """A person insured in `area` with one insurance record and (optionally) one card."""
    birth = dt.date(1955, 3, 14)
    return identity_pb2.Person(
        psn_no=psn_no,
        psn_cert_type="01",
        certno=id_number(area, birth, serial),
        psn_name=f"测试{psn_no[-3:]}",
        gend="1",
        brdy=date_to_proto(birth),
        naty="01",
        insurances=[
            identity_pb2.Insurance(
                insutype=insutype,
                psn_type=psn_type,
                status=status,  # type: ignore[arg-type]
                insuplc_admdvs=area,
                balc=money(balc_fen),
                idet_types=idet_types,
            )
        ],
        cards=[
            identity_pb2.Card(card_no=card_no, card_sn=f"SN{card_no}", status=card_status)  # type: ignore[arg-type]
        ]
        if card_no
        else [],
    )
