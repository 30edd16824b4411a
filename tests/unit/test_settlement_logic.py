"""The settlement computation of bundle-format.md, step by step, to the fen."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.settlement.logic import (
    Assistance,
    CriticalIllness,
    LineSums,
    Policy,
    Tier,
    Visit,
    YearToDate,
    settle,
    tier_segments,
)

pytestmark = pytest.mark.unit
D = Decimal


def sums(inscp: int, total: int | None = None, own: int = 0) -> LineSums:
    total = inscp + own if total is None else total
    return LineSums(total, own, 0, total - inscp - own, inscp)


FLAT_80 = Policy(deductible_fen={}, tiers=(Tier(None, D("0.80")),), annual_cap_fen=30_000_000)
RETIREE = Policy(
    deductible_fen={1: 30_000, 2: 60_000, 3: 100_000},
    repeat_deductible_factor=D("0.5"),
    tiers=(Tier(1_000_000, D("0.85")), Tier(None, D("0.90"))),
    annual_cap_fen=30_000_000,
    reduction={"referral": D("0.10"), "emergency": D("0.10"), "other_temporary": D("0.20")},
)
LONG_TERM = Visit(institution_level=3, inpatient=True, reduction_category=None)


def test_published_worked_example() -> None:
    # 廊坊 retiree, Beijing chronic-disease drugs: 64.29 in all, 61.11 in scope, 80%.
    bill = LineSums(6429, 0, 0, 318, 6111)
    result = settle(bill, FLAT_80, Visit(3, False, None), YearToDate())
    assert (result.act_pay_dedc, result.hifp_pay, result.fund_pay_sumamt) == (0, 4889, 4889)
    assert (result.psn_part_amt, result.psn_cash_pay) == (1540, 1540)
    assert result.pool_prop_selfpay == D("0.8000")


def test_deductible_by_level_then_tiers_measured_from_it() -> None:
    result = settle(sums(2_100_000), RETIREE, LONG_TERM, YearToDate())
    # 21,000 in scope; 1,000 deductible; 10,000 at 85% + 10,000 at 90%.
    assert result.act_pay_dedc == 100_000
    assert [(s.segment_fen, s.ratio) for s in result.tier_steps] == [
        (1_000_000, D("0.85")),
        (1_000_000, D("0.90")),
    ]
    assert result.hifp_pay == 850_000 + 900_000
    assert result.psn_part_amt == 2_100_000 - 1_750_000


def test_second_inpatient_stay_halves_the_deductible() -> None:
    result = settle(sums(500_000), RETIREE, LONG_TERM, YearToDate(inpatient_settlements=1))
    assert result.act_pay_dedc == 50_000
    assert result.hifp_pay == round(450_000 * 0.85)


def test_deductible_never_exceeds_the_in_scope_amount() -> None:
    result = settle(sums(40_000, total=90_000, own=50_000), RETIREE, LONG_TERM, YearToDate())
    assert (result.act_pay_dedc, result.hifp_pay, result.psn_part_amt) == (40_000, 0, 90_000)


@pytest.mark.parametrize(
    ("category", "first_ratio"),
    [
        (None, D("0.85")),
        ("referral", D("0.75")),
        ("emergency", D("0.75")),
        ("other_temporary", D("0.65")),
    ],
)
def test_temporary_patients_lose_points_off_every_tier(
    category: str | None, first_ratio: Decimal
) -> None:
    visit = Visit(institution_level=3, inpatient=True, reduction_category=category)
    result = settle(sums(2_100_000), RETIREE, visit, YearToDate())
    assert [step.ratio for step in result.tier_steps] == [first_ratio, first_ratio + D("0.05")]


def test_annual_cap_reached_mid_settlement() -> None:
    result = settle(sums(2_100_000), RETIREE, LONG_TERM, YearToDate(fund_paid_fen=29_500_000))
    assert result.pool_unlimited == 1_750_000
    assert (result.hifp_pay, result.cap_applied) == (500_000, True)
    assert result.psn_part_amt == 2_100_000 - 500_000


CRITICAL = Policy(
    deductible_fen={3: 100_000},
    tiers=(Tier(None, D("0.60")),),
    annual_cap_fen=50_000_000,
    critical_illness=CriticalIllness(
        fund="hifmi_pay",
        threshold_fen=1_500_000,
        tiers=(Tier(10_000_000, D("0.60")), Tier(None, D("0.70"))),
        annual_cap_fen=40_000_000,
    ),
    assistance=Assistance(frozenset({"low_income"}), D("0.70"), 5_000_000),
)


def test_critical_illness_crossing_its_threshold_within_one_settlement() -> None:
    result = settle(sums(5_100_000), CRITICAL, Visit(3, True, None), YearToDate())
    # pool = 60% of 50,000 = 30,000; burden = 51,000 − 30,000 = 21,000; excess 6,000 at 60%.
    assert result.hifp_pay == 3_000_000
    assert result.burden_fen == 2_100_000
    assert (result.hifmi_pay, result.hifob_pay) == (360_000, 0)


def test_critical_illness_across_two_settlements_pays_only_the_new_excess() -> None:
    first = settle(sums(2_600_000), CRITICAL, Visit(3, True, None), YearToDate())
    # pool 60% of 25,000 = 15,000; burden 26,000 − 15,000 = 11,000: below the threshold.
    assert first.burden_fen == 2_600_000 - 1_500_000
    assert first.hifmi_pay == 0
    year = YearToDate(first.hifp_pay, 1, first.burden_fen, first.hifmi_pay, 0)
    second = settle(sums(2_100_000), CRITICAL, Visit(3, True, None), year)
    # burden this time 21,000 − 0.6 × (21,000 − 1,000) = 9,000; the year 11,000 → 20,000.
    assert second.burden_fen == 900_000
    assert second.hifmi_pay == (2_000_000 - 1_500_000) * 60 // 100


def test_critical_illness_tiers_split_the_annual_excess() -> None:
    year = YearToDate(burden_fen=1_500_000 + 9_900_000)
    result = settle(sums(600_000), CRITICAL, Visit(3, True, None), year)
    # burden 6,000 − 3,000 = 3,000: 1,000 of it at 60%, 2,000 above 100,000 at 70%.
    assert result.burden_fen == 300_000
    assert result.hifmi_pay == 60_000 + 140_000


def test_assistance_pays_a_share_of_what_remains_for_identity_holders() -> None:
    poor = Visit(3, True, None, identities=frozenset({"low_income"}))
    result = settle(sums(5_100_000), CRITICAL, poor, YearToDate())
    assert result.maf_pay == round((2_100_000 - 360_000) * 0.70)
    assert result.fund_pay_sumamt == 3_000_000 + 360_000 + result.maf_pay
    nobody = settle(sums(5_100_000), CRITICAL, Visit(3, True, None), YearToDate())
    assert nobody.maf_pay == 0
    capped = settle(sums(5_100_000), CRITICAL, poor, YearToDate(assistance_paid_fen=4_900_000))
    assert capped.maf_pay == 100_000


def test_account_pays_before_cash_up_to_the_balance() -> None:
    visit = Visit(3, False, None, use_account=True, account_balance_fen=1000)
    result = settle(LineSums(6429, 0, 0, 318, 6111), FLAT_80, visit, YearToDate())
    assert (result.acct_pay, result.psn_cash_pay, result.balc) == (1000, 540, 0)
    rich = Visit(3, False, None, use_account=True, account_balance_fen=100_000)
    assert settle(LineSums(6429, 0, 0, 318, 6111), FLAT_80, rich, YearToDate()).balc == 98_460


def test_tier_segments_are_measured_from_the_base() -> None:
    tiers = (Tier(100, D("0.5")), Tier(300, D("0.6")), Tier(None, D("0.7")))
    assert [s for s, _ in tier_segments(50, tiers)] == [50]
    assert [s for s, _ in tier_segments(350, tiers)] == [100, 200, 50]


@given(
    inscp=st.integers(0, 50_000_000),
    own=st.integers(0, 5_000_000),
    fund_paid=st.integers(0, 40_000_000),
    burden=st.integers(0, 20_000_000),
    balance=st.integers(0, 1_000_000),
)
def test_every_settlement_adds_up_and_nothing_is_negative(
    inscp: int, own: int, fund_paid: int, burden: int, balance: int
) -> None:
    visit = Visit(3, True, "referral", frozenset({"low_income"}), True, balance)
    year = YearToDate(fund_paid, 1, burden, 0, 0)
    result = settle(sums(inscp, own=own), CRITICAL, visit, year)
    assert result.fund_pay_sumamt + result.psn_part_amt == result.sums.medfee_sumamt
    assert result.acct_pay + result.psn_cash_pay == result.psn_part_amt
    assert min(result.hifp_pay, result.hifmi_pay, result.maf_pay, result.acct_pay) >= 0
    assert result.psn_cash_pay >= 0
    assert year.fund_paid_fen + result.hifp_pay <= max(CRITICAL.annual_cap_fen, year.fund_paid_fen)
