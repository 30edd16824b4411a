"""Identity rules: ID-number validity, which credential states are refused, record validation.

Pure functions over plain dataclasses; the servicer maps protos and the repository maps rows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import IntEnum

from services.identity.errors import (
    CardFrozen,
    CardLost,
    CardSnMismatch,
    CardSnRequired,
    InsuranceSuspended,
    InsuranceTerminated,
    InvalidIdNumber,
    PersonRecordInvalid,
)

# GB 11643-1999: weights of the first 17 characters and the check character per remainder.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID_NUMBER = re.compile(r"\d{17}[\dX]")
_AREA = re.compile(r"\d{6}")

INSUTYPES = ("310", "390")
PSN_TYPES = ("employed", "retired", "resident")


class InsuranceStatus(IntEnum):
    """psn_insu_stas, with the national codes as values."""

    ACTIVE = 1
    SUSPENDED = 2
    TERMINATED = 4


class CardStatus(IntEnum):
    """Social security card status."""

    NORMAL = 1
    LOST = 2
    FROZEN = 3


@dataclass(frozen=True)
class InsuranceRecord:
    """One insurance row of a person."""

    insutype: str
    psn_type: str
    status: InsuranceStatus
    insuplc_admdvs: str
    balc_fen: int
    idet_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardRecord:
    """One social security card."""

    card_no: str
    card_sn: str
    status: CardStatus
    replaced_by: str = ""


@dataclass(frozen=True)
class PersonRecord:
    """A person with insurance records and cards."""

    psn_no: str
    psn_cert_type: str
    certno: str
    psn_name: str
    gend: str
    brdy: dt.date
    naty: str = "01"
    insurances: tuple[InsuranceRecord, ...] = ()
    cards: tuple[CardRecord, ...] = field(default=())


def check_id_number(certno: str) -> None:
    """Refuse an ID number whose format, birth date or check character is wrong (GB 11643)."""
    normalised = certno.upper()
    if not _ID_NUMBER.fullmatch(normalised):
        raise InvalidIdNumber("the ID number must be 17 digits followed by a digit or X")
    try:
        dt.date(int(normalised[6:10]), int(normalised[10:12]), int(normalised[12:14]))
    except ValueError:
        raise InvalidIdNumber("the ID number carries an impossible birth date") from None
    total = sum(int(digit) * weight for digit, weight in zip(normalised, _WEIGHTS, strict=False))
    if _CHECK[total % 11] != normalised[17]:
        raise InvalidIdNumber("the ID number's check character is wrong")


def id_number_check_character(first17: str) -> str:
    """The check character completing 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def make_id_number(area: str, birth: dt.date, serial: int) -> str:
    """A valid ID number for an area, a birth date and a three-digit serial (demo and tests)."""
    first17 = f"{area}{birth:%Y%m%d}{serial % 1000:03d}"
    return first17 + id_number_check_character(first17)


def check_card(card: CardRecord, card_sn: str) -> None:
    """Refuse a card presented without or with the wrong card_sn, or not in normal status."""
    if not card_sn:
        raise CardSnRequired("a social security card credential needs its card_sn")
    if card_sn != card.card_sn:
        raise CardSnMismatch("the card identification code does not match the card")
    if card.status is CardStatus.LOST:
        raise CardLost(
            "the card was reported lost" + (" and replaced" if card.replaced_by else ""),
            cardNo=card.card_no,
        )
    if card.status is CardStatus.FROZEN:
        raise CardFrozen("the card is frozen by the insured place", cardNo=card.card_no)


def active_insurance(person: PersonRecord) -> InsuranceRecord:
    """The record that settles (employees' first when both are active), or the refusal."""
    active = [row for row in person.insurances if row.status is InsuranceStatus.ACTIVE]
    if active:
        return sorted(active, key=lambda row: row.insutype)[0]
    if any(row.status is InsuranceStatus.SUSPENDED for row in person.insurances):
        raise InsuranceSuspended("the person's insurance is suspended", psnNo=person.psn_no)
    raise InsuranceTerminated("the person has no insurance in force", psnNo=person.psn_no)


def validate_person(person: PersonRecord) -> None:
    """Refuse a record that breaks a rule of persons.csv (the message names the field)."""
    problem = _person_problem(person) or _records_problem(person)
    if problem:
        raise PersonRecordInvalid(f"person {person.psn_no}: {problem}", psnNo=person.psn_no)


def _person_problem(person: PersonRecord) -> str:
    """What is wrong with the person's own fields ('' when nothing)."""
    if not person.psn_no or len(person.psn_no) > 30:
        return "psn_no must have 1 to 30 characters"
    try:
        check_id_number(person.certno)
    except InvalidIdNumber as error:
        return f"certno: {error.message}"
    if not person.psn_name or len(person.psn_name) > 50:
        return "psn_name must have 1 to 50 characters"
    if not person.psn_cert_type or len(person.psn_cert_type) > 6:
        return "psn_cert_type must have 1 to 6 characters"
    if person.gend not in ("1", "2"):
        return "gend must be 1 or 2"
    if len(person.naty) > 4:
        return "naty has at most 4 characters"
    return ""


def _records_problem(person: PersonRecord) -> str:
    """What is wrong with the person's insurance records or cards ('' when nothing)."""
    if not person.insurances:
        return "at least one insurance record is needed"
    if len({row.insutype for row in person.insurances}) != len(person.insurances):
        return "one insurance record per insutype"
    for row in person.insurances:
        problem = _insurance_problem(row)
        if problem:
            return problem
    for card in person.cards:
        if not card.card_no or len(card.card_no) > 20 or not 1 <= len(card.card_sn) <= 32:
            return "a card needs card_no (at most 20 characters) and card_sn (at most 32)"
    return ""


def _insurance_problem(row: InsuranceRecord) -> str:
    """What is wrong with one insurance record ('' when nothing)."""
    if row.insutype not in INSUTYPES:
        return f"insutype must be one of {', '.join(INSUTYPES)}"
    if row.psn_type not in PSN_TYPES:
        return f"psn_type must be one of {', '.join(PSN_TYPES)}"
    if not _AREA.fullmatch(row.insuplc_admdvs):
        return "insuplc_admdvs must be six digits"
    if row.balc_fen < 0:
        return "balc must not be negative"
    if len(";".join(row.idet_types)) > 200:
        return "idet_types take at most 200 characters, separators included"
    return ""
