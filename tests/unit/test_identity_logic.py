"""Identity rules without I/O: GB 11643 check digits, card and insurance refusals, vouchers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.identity import logic
from services.identity.errors import (
    CardFrozen,
    CardLost,
    CardSnMismatch,
    CardSnRequired,
    InsuranceSuspended,
    InsuranceTerminated,
    InvalidIdNumber,
    PersonRecordInvalid,
    VoucherExpired,
    VoucherInvalid,
)
from services.identity.logic import CardRecord, CardStatus, InsuranceRecord, InsuranceStatus
from services.identity.voucher import VoucherSigner
from tests.people import id_number

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "certno",
    ["11010519491231002X", "11010519491231002x", id_number("440301", dt.date(1990, 1, 1), 123)],
)
def test_valid_id_numbers_pass(certno: str) -> None:
    logic.check_id_number(certno.upper())


@pytest.mark.parametrize(
    ("certno", "why"),
    [
        ("110105194912310021", "check character"),
        ("11010519491331002X", "birth date"),
        ("1101051949123100", "17 digits"),
        ("11010519491231002Y", "17 digits"),
    ],
)
def test_invalid_id_numbers_are_refused_with_the_reason(certno: str, why: str) -> None:
    with pytest.raises(InvalidIdNumber, match=why):
        logic.check_id_number(certno)


CARD = CardRecord("C123", "SN1", CardStatus.NORMAL)


def test_card_checks() -> None:
    logic.check_card(CARD, "SN1")
    with pytest.raises(CardSnRequired):
        logic.check_card(CARD, "")
    with pytest.raises(CardSnMismatch):
        logic.check_card(CARD, "SN2")
    with pytest.raises(CardLost, match="reported lost and replaced"):
        logic.check_card(CardRecord("C123", "SN1", CardStatus.LOST, "C124"), "SN1")
    with pytest.raises(CardFrozen):
        logic.check_card(CardRecord("C123", "SN1", CardStatus.FROZEN), "SN1")


def _person(*statuses: InsuranceStatus) -> logic.PersonRecord:
    return logic.PersonRecord(
        psn_no="P1",
        psn_cert_type="01",
        certno="11010519491231002X",
        psn_name="张三",
        gend="1",
        brdy=dt.date(1949, 12, 31),
        insurances=tuple(
            InsuranceRecord(insutype, "retired", status, "131000", 0)
            for insutype, status in zip(("390", "310"), statuses, strict=False)
        ),
    )


def test_active_insurance_prefers_employees_when_both_are_active() -> None:
    chosen = logic.active_insurance(_person(InsuranceStatus.ACTIVE, InsuranceStatus.ACTIVE))
    assert chosen.insutype == "310"


def test_inactive_insurance_is_refused_as_suspended_or_terminated() -> None:
    with pytest.raises(InsuranceSuspended):
        logic.active_insurance(_person(InsuranceStatus.TERMINATED, InsuranceStatus.SUSPENDED))
    with pytest.raises(InsuranceTerminated):
        logic.active_insurance(_person(InsuranceStatus.TERMINATED))


def test_validate_person_names_the_broken_field() -> None:
    logic.validate_person(_person(InsuranceStatus.ACTIVE))
    broken = _person(InsuranceStatus.ACTIVE)
    with pytest.raises(PersonRecordInvalid, match="person P1: gend must be 1 or 2"):
        logic.validate_person(logic.PersonRecord(**{**broken.__dict__, "gend": "3"}))
    with pytest.raises(PersonRecordInvalid, match="certno: the ID number's check character"):
        logic.validate_person(
            logic.PersonRecord(**{**broken.__dict__, "certno": "110105194912310021"})
        )
    too_long: list[tuple[dict[str, Any], str]] = [
        ({"psn_cert_type": "0123456"}, "psn_cert_type must have 1 to 6 characters"),
        ({"naty": "01234"}, "naty has at most 4 characters"),
        (
            {"cards": (CardRecord("C123", "S" * 33, CardStatus.NORMAL),)},
            r"card_sn \(at most 32\)",
        ),
        (
            {
                "insurances": (
                    InsuranceRecord(
                        "310", "retired", InsuranceStatus.ACTIVE, "131000", 0, ("X" * 20,) * 10
                    ),
                )
            },
            "idet_types take at most 200 characters",
        ),
    ]
    for change, message in too_long:
        with pytest.raises(PersonRecordInvalid, match=message):
            logic.validate_person(logic.PersonRecord(**{**broken.__dict__, **change}))


def test_voucher_round_trip_expiry_and_forgery() -> None:
    signer = VoucherSigner.from_seed(bytes(range(32)))
    now = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
    voucher_id, token = signer.issue(now + dt.timedelta(minutes=5))
    assert signer.verify(token, now) == voucher_id
    assert len(token) == 119 and "." in token
    with pytest.raises(VoucherExpired):
        signer.verify(token, now + dt.timedelta(minutes=5))
    other = VoucherSigner.from_seed(bytes(32))
    _, forged = other.issue(now + dt.timedelta(minutes=5))
    with pytest.raises(VoucherInvalid):
        signer.verify(forged, now)
    payload, signature = token.split(".")
    tampered = ("A" if payload[0] != "A" else "B") + payload[1:] + "." + signature
    with pytest.raises(VoucherInvalid):
        signer.verify(tampered, now)
    with pytest.raises(VoucherInvalid):
        signer.verify("not-a-token", now)
