"""How one fee line splits against a catalogue item (bundle-format.md, per fee line).

1. No item, not in effect on the fee date, class 丙, or a restriction not met: the whole line is
   fulamt_ownpay_amt.
2. Otherwise overlmt = max(0, amount − round(cap × cnt)); preselfpay = round((amount − overlmt) ×
   selfpay_prop); inscp = amount − overlmt − preselfpay.
Amounts are integer fen; "round" is half-up to the fen. A refund line (negative quantity) splits
exactly as the line it refunds, with every part negated.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import IntEnum

from services.catalogue.errors import LineAmountMismatch, LineInvalid

_QUANTITY = re.compile(r"-?\d{1,12}(\.\d{1,4})?")
_PRICE = re.compile(r"\d{1,10}(\.\d{1,6})?")
_FEN = Decimal(100)
ONE = Decimal(1)
ZERO = Decimal(0)


class ItemClass(IntEnum):
    """chrgitm_lv, values as in medsettle.catalogue.v1.ItemClass."""

    A = 1
    B = 2
    C = 3


class NonPayable(IntEnum):
    """Why a line is wholly self-paid, values as in NonPayableReason."""

    NOT_IN_CATALOGUE = 1
    CLASS_C = 2
    LEVEL_RESTRICTION = 3
    MEDICAL_TYPE_RESTRICTION = 4
    NOT_EFFECTIVE = 5


MEMO = {
    NonPayable.NOT_IN_CATALOGUE: "not in the treatment province's catalogue (目录外)",
    NonPayable.CLASS_C: "class 丙 item, self-paid",
    NonPayable.LEVEL_RESTRICTION: "payable only in institutions of a higher level",
    NonPayable.MEDICAL_TYPE_RESTRICTION: "not payable for this medical type",
    NonPayable.NOT_EFFECTIVE: "not in effect on the fee date",
}


@dataclass(frozen=True)
class Item:
    """A catalogue item as the rules need it."""

    code: str
    list_type: str
    item_class: ItemClass
    selfpay_prop: Decimal
    price_cap_fen: int | None
    min_level: int
    med_types: tuple[str, ...]
    begin_date: dt.date
    end_date: dt.date | None


@dataclass(frozen=True)
class Line:
    """A fee line as the rules need it."""

    sn: str
    cnt: Decimal
    pric: Decimal
    amount_fen: int
    fee_date: dt.date


@dataclass(frozen=True)
class Split:
    """The parts of one line, in fen."""

    fulamt_ownpay: int
    overlmt: int
    preselfpay: int
    inscp: int
    selfpay_prop: Decimal
    reason: NonPayable | None = None


def round_fen(value: Decimal) -> int:
    """Half-up to a whole fen."""
    return int(value.quantize(ONE, rounding=ROUND_HALF_UP))


def parse_line(sn: str, cnt: str, pric: str, amount_fen: int, fee_date: dt.date) -> Line:
    """A checked line: decimal formats, and amount = cnt × pric within one fen."""
    if not _QUANTITY.fullmatch(cnt) or Decimal(cnt) == ZERO:
        raise LineInvalid(f"line {sn}: cnt must be a non-zero decimal with at most 4 decimals")
    if not _PRICE.fullmatch(pric):
        raise LineInvalid(f"line {sn}: pric must be a decimal with at most 6 decimals")
    quantity, price = Decimal(cnt), Decimal(pric)
    expected = round_fen(quantity * price * _FEN)
    if abs(expected - amount_fen) > 1:
        raise LineAmountMismatch(
            f"line {sn}: amount {amount_fen / 100:.2f} differs from cnt × pric "
            f"= {expected / 100:.2f} by more than one fen",
            feedetlSn=sn,
            expectedFen=expected,
            amountFen=amount_fen,
        )
    return Line(sn, quantity, price, amount_fen, fee_date)


def _self_paid(line: Line, reason: NonPayable) -> Split:
    return Split(line.amount_fen, 0, 0, 0, ONE, reason)


def non_payable_reason(
    item: Item | None, line: Line, level: int, med_type: str
) -> NonPayable | None:
    """Why the line is wholly self-paid, or None when it is payable."""
    if item is None:
        return NonPayable.NOT_IN_CATALOGUE
    if line.fee_date < item.begin_date or (item.end_date and line.fee_date > item.end_date):
        return NonPayable.NOT_EFFECTIVE
    if item.item_class is ItemClass.C:
        return NonPayable.CLASS_C
    if item.min_level and level < item.min_level:
        return NonPayable.LEVEL_RESTRICTION
    if item.med_types and med_type not in item.med_types:
        return NonPayable.MEDICAL_TYPE_RESTRICTION
    return None


def classify(item: Item | None, line: Line, level: int, med_type: str) -> Split:
    """Split one line against the item in effect (None when the code is not in the catalogue)."""
    reason = non_payable_reason(item, line, level, med_type)
    if reason is not None or item is None:
        return _self_paid(line, reason or NonPayable.NOT_IN_CATALOGUE)
    sign = -1 if line.amount_fen < 0 else 1
    amount = abs(line.amount_fen)
    overlmt = 0
    if item.price_cap_fen is not None:
        overlmt = max(0, amount - round_fen(Decimal(item.price_cap_fen) * abs(line.cnt)))
    preselfpay = round_fen((amount - overlmt) * item.selfpay_prop)
    inscp = amount - overlmt - preselfpay
    return Split(0, sign * overlmt, sign * preselfpay, sign * inscp, item.selfpay_prop)


LIST_TYPES = ("101", "102", "103", "104", "201", "301")
_RATIO = re.compile(r"(0(\.\d{1,4})?|1(\.0{1,4})?)")
_INSTITUTION_CODE = re.compile(r"H\d{11}")


def item_problem(
    code: str,
    list_type: str,
    name: str,
    item_class: int,
    selfpay_prop: str,
    price_cap_fen: int | None,
    min_level: int,
    begin_date: dt.date,
    end_date: dt.date | None,
) -> str:
    """What is wrong with an uploaded catalogue item ('' when nothing)."""
    if not code or len(code) > 50:
        return "med_list_codg must have 1 to 50 characters"
    if list_type not in LIST_TYPES:
        return f"list_type must be one of {', '.join(LIST_TYPES)}"
    if not name or len(name) > 200:
        return "name must have 1 to 200 characters"
    if item_class not in (1, 2, 3):
        return "item_class (chrgitm_lv) must be 01, 02 or 03"
    if not _RATIO.fullmatch(selfpay_prop):
        return "selfpay_prop must be a decimal between 0 and 1 (at most 4 decimals)"
    if item_class == ItemClass.A and Decimal(selfpay_prop) != ZERO:
        return "a class 甲 item has no first self-pay share"
    if price_cap_fen is not None and price_cap_fen < 0:
        return "pric_uplmt_amt must not be negative"
    if not 0 <= min_level <= 3:
        return "min_level must be 1, 2 or 3 (or empty)"
    if end_date is not None and end_date < begin_date:
        return "enddate is before begndate"
    return ""


def institution_problem(code: str, name: str, admdvs: str, level: int) -> str:
    """What is wrong with an uploaded institution ('' when nothing)."""
    if not _INSTITUTION_CODE.fullmatch(code):
        return "fixmedins_code must be H followed by 11 digits"
    if not name or len(name) > 200:
        return "fixmedins_name must have 1 to 200 characters"
    if not (len(admdvs) == 6 and admdvs.isdigit()):
        return "admdvs must be a six-digit area code"
    if level not in (1, 2, 3):
        return "level must be 1, 2 or 3"
    return ""
