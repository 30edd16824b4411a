"""Per-line arithmetic of bundle-format.md, in fen, for every class, cap and restriction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.catalogue import logic
from services.catalogue.errors import LineAmountMismatch, LineInvalid
from services.catalogue.logic import Item, ItemClass, NonPayable

pytestmark = pytest.mark.unit
DAY = dt.date(2026, 7, 1)


def item(
    item_class: ItemClass = ItemClass.A,
    selfpay: str = "0",
    cap_fen: int | None = None,
    min_level: int = 0,
    med_types: tuple[str, ...] = (),
    begin: dt.date = dt.date(2026, 1, 1),
    end: dt.date | None = None,
) -> Item:
    return Item("X", "101", item_class, Decimal(selfpay), cap_fen, min_level, med_types, begin, end)


def line(
    amount_fen: int, cnt: str = "1", pric: str | None = None, day: dt.date = DAY
) -> logic.Line:
    return logic.parse_line("1", cnt, pric or f"{amount_fen / 100:.2f}", amount_fen, day)


def parts(split: logic.Split) -> tuple[int, int, int, int]:
    return (split.fulamt_ownpay, split.overlmt, split.preselfpay, split.inscp)


def test_worked_example_lines() -> None:
    # 阿卡波糖片 class 甲 32.52; 瑞格列奈片 class 乙 31.77 with Beijing's 10% first self-pay.
    assert parts(logic.classify(item(), line(3252), 3, "14")) == (0, 0, 0, 3252)
    assert parts(logic.classify(item(ItemClass.B, "0.10"), line(3177), 3, "14")) == (
        0,
        0,
        318,
        2859,
    )


def test_price_cap_takes_the_excess_before_the_self_pay_share() -> None:
    capped = item(ItemClass.B, "0.05", cap_fen=1250)  # 12.50 yuan per unit
    split = logic.classify(capped, line(4000, cnt="3", pric="13.333334"), 3, "21")
    # cap × cnt = 37.50; over = 2.50; preselfpay = round(37.50 × 0.05) = 1.88 (half up).
    assert parts(split) == (0, 250, 188, 3562)


def test_under_the_cap_nothing_is_over() -> None:
    assert parts(logic.classify(item(cap_fen=1000), line(900), 3, "21")) == (0, 0, 0, 900)


def test_half_fen_rounds_up() -> None:
    # 0.05 × 0.10 yuan = 0.005 yuan = 0.5 fen -> 1 fen.
    assert parts(logic.classify(item(ItemClass.B, "0.10"), line(5), 3, "21")) == (0, 0, 1, 4)


@pytest.mark.parametrize(
    ("catalogue_item", "level", "med_type", "day", "reason"),
    [
        (None, 3, "21", DAY, NonPayable.NOT_IN_CATALOGUE),
        (item(ItemClass.C), 3, "21", DAY, NonPayable.CLASS_C),
        (item(min_level=3), 2, "21", DAY, NonPayable.LEVEL_RESTRICTION),
        (item(med_types=("21", "14")), 3, "11", DAY, NonPayable.MEDICAL_TYPE_RESTRICTION),
        (item(begin=dt.date(2026, 8, 1)), 3, "21", DAY, NonPayable.NOT_EFFECTIVE),
        (item(end=dt.date(2026, 6, 30)), 3, "21", DAY, NonPayable.NOT_EFFECTIVE),
    ],
)
def test_unpayable_lines_are_wholly_self_paid_with_a_reason(
    catalogue_item: Item | None, level: int, med_type: str, day: dt.date, reason: NonPayable
) -> None:
    split = logic.classify(catalogue_item, line(1234, day=day), level, med_type)
    assert parts(split) == (1234, 0, 0, 0)
    assert split.reason is reason


def test_restrictions_that_are_met_keep_the_line_payable() -> None:
    restricted = item(min_level=2, med_types=("21",), end=DAY)
    assert logic.classify(restricted, line(500), 2, "21").reason is None


def test_refund_line_splits_as_the_line_it_refunds_negated() -> None:
    capped = item(ItemClass.B, "0.10", cap_fen=1000)
    refund = logic.parse_line("2", "-2", "12.00", -2400, DAY)
    assert parts(logic.classify(capped, refund, 3, "21")) == (0, -400, -200, -1800)


def test_amount_must_match_quantity_times_price_within_one_fen() -> None:
    logic.parse_line("7", "3", "3.333", 1000, DAY)  # 9.999 -> 10.00
    logic.parse_line("7", "3", "3.333", 1001, DAY)  # one fen off is tolerated
    with pytest.raises(LineAmountMismatch, match=r"line 7: amount 10\.02 differs"):
        logic.parse_line("7", "3", "3.333", 1002, DAY)
    with pytest.raises(LineInvalid, match="line 8: cnt"):
        logic.parse_line("8", "1.23456", "1", 123, DAY)
    with pytest.raises(LineInvalid, match="line 9: pric"):
        logic.parse_line("9", "1", "-1", -100, DAY)
