"""Clearing rules without a database: netting, statement hashes, prepayment usage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clearing import logic

pytestmark = pytest.mark.unit
_PROVINCES = st.sampled_from(["110000", "130000", "310000", "440000", "510000"])
_PAIRS = st.lists(
    st.builds(
        logic.PairTotals,
        insured_prov=_PROVINCES,
        treatment_prov=_PROVINCES,
        entry_count=st.integers(1, 100),
        medfee=st.integers(-(10**9), 10**12),
        hifp=st.integers(-(10**9), 10**12),
        critical=st.integers(0, 10**10),
        maf=st.integers(0, 10**9),
        acct=st.integers(0, 10**9),
    ),
    max_size=20,
)


@given(_PAIRS)
def test_net_positions_sum_to_zero_with_one_transfer_per_province(
    pairs: list[logic.PairTotals],
) -> None:
    positions = logic.net_positions(pairs)
    assert sum(p.net for p in positions) == 0
    transfers = logic.transfers(positions)
    assert len(transfers) <= len(positions)
    paid_in = sum(amount for _, to_central, amount in transfers if to_central)
    paid_out = sum(amount for _, to_central, amount in transfers if not to_central)
    assert paid_in == paid_out


@given(_PAIRS)
def test_the_statement_hash_ignores_order(pairs: list[logic.PairTotals]) -> None:
    assert logic.statement_hash("2026-11", pairs) == logic.statement_hash(
        "2026-11", list(reversed(pairs))
    )


@pytest.mark.parametrize(
    ("spend", "amount", "level", "usage"),
    [
        (6_999, 10_000, logic.NORMAL, "0.6999"),
        (7_000, 10_000, logic.YELLOW, "0.7000"),
        (8_999, 10_000, logic.YELLOW, "0.8999"),
        (9_000, 10_000, logic.RED, "0.9000"),
        (10_500, 10_000, logic.RED, "1.0500"),
        (0, 0, logic.NORMAL, "0.0000"),
        (1, 0, logic.RED, "9.9999"),
    ],
)
def test_usage_levels_start_exactly_at_70_and_90_percent(
    spend: int, amount: int, level: int, usage: str
) -> None:
    assert logic.usage_level(spend, amount) == level
    assert logic.usage_text(spend, amount) == usage


def test_a_jump_crosses_each_threshold_once_and_a_fall_none() -> None:
    assert logic.crossed(logic.NORMAL, logic.RED) == [logic.YELLOW, logic.RED]
    assert logic.crossed(logic.YELLOW, logic.RED) == [logic.RED]
    assert logic.crossed(logic.RED, logic.NORMAL) == []


def test_a_prepayment_is_two_months_of_the_average_month() -> None:
    assert logic.prepayment_from_spend(12_000_000) == 2_000_000
    assert logic.prepayment_from_spend(9) == 2  # 1.5 fen rounds half up
    assert logic.prepayment_from_spend(-5) == 0
