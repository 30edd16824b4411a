"""The settlement computation of bundle-format.md, step by step, to the fen."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.settlement.logic import (
    Assistance,
    CriticalIllness,
    LineSums,
    Policy,
    PolicyKey,
    PolicyProblem,
    Tier,
    Visit,
    YearToDate,
    check_policy,
    choose_policy,
    explain,
    fund_shares,
    platform_id,
    reduction_category,
    settle,
    tier_segments,
    year_after,
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


@given(
    lines=st.lists(
        st.tuples(st.integers(0, 2_000_000), st.integers(0, 300_000), st.integers(0, 100_000)),
        min_size=1,
        max_size=20,
    ),
    deductible=st.integers(0, 200_000),
    first_ratio=st.sampled_from([D("0.50"), D("0.85"), D("0.90")]),
    cap=st.integers(0, 5_000_000),
    fund_paid=st.integers(0, 5_000_000),
    burden=st.integers(0, 3_000_000),
    critical_paid=st.integers(0, 100_000),
    inpatient=st.booleans(),
    category=st.sampled_from([None, "referral", "emergency", "other_temporary"]),
    use_account=st.booleans(),
    balance=st.integers(0, 500_000),
)
def test_random_bills_add_up_and_settle_cancel_settle_gives_the_same_result(
    lines: list[tuple[int, int, int]],
    deductible: int,
    first_ratio: Decimal,
    cap: int,
    fund_paid: int,
    burden: int,
    critical_paid: int,
    inpatient: bool,
    category: str | None,
    use_account: bool,
    balance: int,
) -> None:
    # Each line: in-scope part, self-paid share of 乙, wholly self-paid part.
    inscp = sum(line[0] for line in lines)
    pre = sum(line[1] for line in lines)
    own = sum(line[2] for line in lines)
    bill = LineSums(inscp + pre + own, own, 0, pre, inscp)
    policy = Policy(
        deductible_fen={1: deductible, 2: deductible, 3: deductible},
        repeat_deductible_factor=D("0.5"),
        tiers=(Tier(1_000_000, first_ratio), Tier(None, D("0.95"))),
        annual_cap_fen=cap,
        reduction={"referral": D("0.10"), "emergency": D("0.10"), "other_temporary": D("0.20")},
        critical_illness=CRITICAL.critical_illness,
        assistance=CRITICAL.assistance,
    )
    visit = Visit(2, inpatient, category, frozenset({"low_income"}), use_account, balance)
    year = YearToDate(fund_paid, 1, burden, critical_paid, 0)

    first = settle(bill, policy, visit, year)
    sums_ = first.sums
    assert sums_.medfee_sumamt == (
        sums_.fulamt_ownpay_amt + sums_.overlmt_selfpay + sums_.preselfpay_amt + sums_.inscp_scp_amt
    )
    assert first.fund_pay_sumamt + first.psn_part_amt == sums_.medfee_sumamt
    assert first.fund_pay_sumamt == first.hifp_pay + first.critical_illness_pay + first.maf_pay
    assert first.acct_pay + first.psn_cash_pay == first.psn_part_amt
    for amount in (first.hifp_pay, first.critical_illness_pay, first.maf_pay, first.acct_pay):
        assert amount >= 0
    assert first.psn_cash_pay >= 0 and first.balc >= 0
    assert fund_paid + first.hifp_pay <= max(cap, fund_paid)

    after = year_after(year, first, inpatient)
    assert year_after(after, first, inpatient, sign=-1) == year
    again = settle(bill, policy, visit, year_after(after, first, inpatient, sign=-1))
    assert again == first


def test_policy_selection_prefers_the_pooling_area_then_the_named_person_type() -> None:
    keys = [
        PolicyKey("130000", "310", 2026, "21", ""),
        PolicyKey("131000", "310", 2026, "21", ""),
        PolicyKey("131000", "310", 2026, "21", "retired"),
        PolicyKey("131000", "310", 2026, "21", "employed"),
    ]
    assert choose_policy(keys, "131000", "retired") == keys[2]
    assert choose_policy(keys, "131000", "resident") == keys[1]
    assert choose_policy(keys[:1], "130600", "retired") == keys[0]
    assert choose_policy(keys, "510100", "retired") is None
    assert keys[2].policy_id == "131000-310-2026-21-retired"
    assert keys[0].policy_id == "130000-310-2026-21-all"


@pytest.mark.parametrize(
    ("filing", "emergency", "expected"),
    [
        (None, True, "emergency"),
        (None, False, None),
        ("referral", False, "referral"),
        ("other_temporary", True, "other_temporary"),
        ("retired_relocated", True, None),
        ("long_term_resident", False, None),
    ],
)
def test_reduction_comes_from_a_temporary_filing_or_the_emergency_flag(
    filing: str | None, emergency: bool, expected: str | None
) -> None:
    assert reduction_category(filing, emergency) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tiers": ()}, "tiers: at least one tier"),
        ({"tiers": (Tier(None, D("0.8")), Tier(None, D("0.9")))}, "only the last tier"),
        ({"tiers": (Tier(500, D("0.8")), Tier(400, D("0.9")))}, "edges must rise"),
        ({"tiers": (Tier(None, D("1.2")),)}, "tiers[0].ratio"),
        ({"deductible_fen": {4: 100}}, "level 4"),
        ({"annual_cap_fen": -1}, "annual_cap"),
        ({"reduction": {"retired_relocated": D("0.1")}}, "reductions"),
        (
            {"critical_illness": CriticalIllness("maf_pay", 0, (Tier(None, D("0.5")),), 0)},
            "critical_illness.fund",
        ),
    ],
)
def test_policies_that_cannot_be_applied_are_refused(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyProblem, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_policy(dataclasses.replace(RETIREE, **change))  # type: ignore[arg-type]


def test_fund_breakdown_uses_the_national_fund_pay_types() -> None:
    visit = Visit(3, True, None, frozenset({"low_income"}), True, 1_000_000)
    result = settle(sums(3_000_000), CRITICAL, visit, YearToDate(burden_fen=2_000_000))
    shares = fund_shares(result, "390")
    assert [s.fund_pay_type for s in shares] == ["390100", "390200", "610100", "310200"]
    assert sum(s.amount_fen for s in shares) == result.fund_pay_sumamt + result.acct_pay


def test_explanation_names_every_step_with_its_figures() -> None:
    visit = Visit(3, True, "referral", frozenset(), False, 0)
    year = YearToDate(inpatient_settlements=1)
    result = settle(sums(2_100_000), RETIREE, visit, year)
    steps = explain(result, RETIREE, visit, year, "referral")
    assert [s.kind for s in steps] == ["deductible", "tier", "tier", "annual_cap", "account"]
    assert steps[0].amount_fen == 50_000 and "repeat factor 0.5" in steps[0].description
    assert [s.ratio for s in steps[1:3]] == [D("0.75"), D("0.80")]
    assert "referral reduction" in steps[1].description


def test_platform_ids_are_thirty_characters_starting_with_the_area() -> None:
    made = platform_id("110100", dt.datetime(2026, 11, 24, 9, 30, 5))
    assert len(made) == 30 and made.startswith("11010020261124093005")
