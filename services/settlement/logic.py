"""The settlement computation of bundle-format.md ("How a settlement is computed"), in fen.

Pure: the caller supplies the line sums (from the catalogue's classification), the insured
place's policy, the person's annual accumulators before this settlement, and the visit facts.
Every step is recorded so a settlement can be explained line by line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from services.common.values import yuan_text as yuan

ONE = Decimal(1)
ZERO = Decimal(0)
RATIO_PLACES = Decimal("0.0001")
# Temporary filing categories and the emergency flag take a reduction; long-term ones none.
EMERGENCY = "emergency"
TEMPORARY_CATEGORIES = frozenset({"referral", EMERGENCY, "other_temporary"})
LONG_TERM_CATEGORIES = frozenset({"retired_relocated", "long_term_resident", "stationed_worker"})
INPATIENT = "21"
MED_TYPES = {
    INPATIENT: "inpatient",
    "11": "ordinary outpatient",
    "14": "chronic-disease outpatient",
}
INSUTYPES = ("310", "390")
PSN_TYPES = ("employed", "retired", "resident")
CRITICAL_FUNDS = ("hifmi_pay", "hifob_pay")
# fund_pay_type codes of the national interface (nhsa-interface.md §3).
POOLED_FUND = {
    "310": ("310100", "职工基本医疗保险统筹基金"),
    "390": ("390100", "城乡居民基本医疗保险基金"),
}
CRITICAL_FUND = {
    "hifob_pay": ("330100", "职工大额医疗费用补助基金"),
    "hifmi_pay": ("390200", "城乡居民大病医疗保险基金"),
}
ASSISTANCE_FUND = ("610100", "医疗救助基金")
ACCOUNT_FUND = ("310200", "职工基本医疗保险个人账户基金")


def round_fen(value: Decimal) -> int:
    """Half-up to a whole fen."""
    return int(value.quantize(ONE, rounding=ROUND_HALF_UP))


def platform_id(admdvs: str, now: dt.datetime) -> str:
    """A 30-character id: area (6) + local time (14) + random serial (10), as the national
    interface builds its message ids. Uniqueness is enforced by the table's key."""
    return f"{admdvs}{now:%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


@dataclass(frozen=True)
class Tier:
    """A segment measured from its base: up to `upto_fen` (None = no edge) paid at `ratio`."""

    upto_fen: int | None
    ratio: Decimal


@dataclass(frozen=True)
class CriticalIllness:
    """Critical-illness insurance (居民大病, hifmi_pay) or large-amount subsidy (hifob_pay)."""

    fund: str
    threshold_fen: int
    tiers: tuple[Tier, ...]
    annual_cap_fen: int


@dataclass(frozen=True)
class Assistance:
    """Medical assistance (医疗救助) for holders of certain identities."""

    identities: frozenset[str]
    ratio: Decimal
    annual_cap_fen: int


@dataclass(frozen=True)
class Policy:
    """An insured place's policy for one (area, insutype, year, medical type, person type)."""

    deductible_fen: dict[int, int]
    tiers: tuple[Tier, ...]
    annual_cap_fen: int
    repeat_deductible_factor: Decimal = ONE
    reduction: dict[str, Decimal] = field(default_factory=dict)
    critical_illness: CriticalIllness | None = None
    assistance: Assistance | None = None


@dataclass(frozen=True)
class LineSums:
    """The sums of a visit's classified fee lines, in fen."""

    medfee_sumamt: int
    fulamt_ownpay_amt: int
    overlmt_selfpay: int
    preselfpay_amt: int
    inscp_scp_amt: int


@dataclass(frozen=True)
class YearToDate:
    """The person's annual accumulators under this policy, before this settlement."""

    fund_paid_fen: int = 0
    inpatient_settlements: int = 0
    burden_fen: int = 0
    critical_paid_fen: int = 0
    assistance_paid_fen: int = 0


@dataclass(frozen=True)
class Visit:
    """Facts of the visit the policy needs."""

    institution_level: int
    inpatient: bool
    reduction_category: str | None
    """The filing category (or "emergency"), for the reduction; None for long-term filers."""
    identities: frozenset[str] = frozenset()
    use_account: bool = False
    account_balance_fen: int = 0


@dataclass(frozen=True)
class TierStep:
    """How one tier segment was paid."""

    segment_fen: int
    ratio: Decimal
    paid: Decimal


@dataclass(frozen=True)
class Result:
    """Every national settlement amount, with the steps that made them."""

    sums: LineSums
    act_pay_dedc: int
    hifp_pay: int
    pool_unlimited: int
    tier_steps: tuple[TierStep, ...]
    cap_applied: bool
    critical_illness_fund: str
    critical_illness_pay: int
    maf_pay: int
    fund_pay_sumamt: int
    psn_part_amt: int
    acct_pay: int
    psn_cash_pay: int
    balc: int
    pool_prop_selfpay: Decimal
    burden_fen: int
    """The personal in-scope burden this settlement adds to the year (inscp − hifp_pay)."""

    @property
    def hifmi_pay(self) -> int:
        """Residents' critical-illness payment."""
        return self.critical_illness_pay if self.critical_illness_fund == "hifmi_pay" else 0

    @property
    def hifob_pay(self) -> int:
        """Employees' large-amount subsidy."""
        return self.critical_illness_pay if self.critical_illness_fund == "hifob_pay" else 0


def tier_segments(amount: int, tiers: tuple[Tier, ...]) -> list[tuple[int, Tier]]:
    """Split an amount (above a base) into the tiers' segments, in order."""
    segments = []
    lower = 0
    for tier in tiers:
        if amount <= lower:
            break
        upper = amount if tier.upto_fen is None else min(amount, tier.upto_fen)
        if upper > lower:
            segments.append((upper - lower, tier))
        lower = upper if tier.upto_fen is None else tier.upto_fen
    return segments


def _tiered(amount: int, tiers: tuple[Tier, ...]) -> Decimal:
    return sum(
        (Decimal(segment) * tier.ratio for segment, tier in tier_segments(amount, tiers)), ZERO
    )


def deductible(policy: Policy, visit: Visit, year: YearToDate) -> int:
    """The deductible by institution level, times the repeat factor from the 2nd inpatient stay."""
    base = policy.deductible_fen.get(visit.institution_level, 0)
    if visit.inpatient and year.inpatient_settlements >= 1:
        return round_fen(Decimal(base) * policy.repeat_deductible_factor)
    return base


def settle(sums: LineSums, policy: Policy, visit: Visit, year: YearToDate) -> Result:
    """Steps 1 to 8 of the settlement computation."""
    inscp = sums.inscp_scp_amt
    dedc = min(deductible(policy, visit, year), max(inscp, 0))
    base = inscp - dedc
    reduction = policy.reduction.get(visit.reduction_category or "", ZERO)
    steps = []
    pool_exact = ZERO
    for segment, tier in tier_segments(base, policy.tiers):
        ratio = max(ZERO, tier.ratio - reduction)
        paid = Decimal(segment) * ratio
        steps.append(TierStep(segment, ratio, paid))
        pool_exact += paid
    pool = round_fen(pool_exact)
    room = max(0, policy.annual_cap_fen - year.fund_paid_fen)
    hifp = min(pool, room)
    burden = inscp - hifp

    critical = 0
    critical_fund = ""
    if policy.critical_illness is not None:
        rule = policy.critical_illness
        critical_fund = rule.fund
        before = max(0, year.burden_fen - rule.threshold_fen)
        after = max(0, year.burden_fen + burden - rule.threshold_fen)
        owed = round_fen(_tiered(after, rule.tiers) - _tiered(before, rule.tiers))
        critical = max(0, min(owed, rule.annual_cap_fen - year.critical_paid_fen))

    assistance = 0
    if policy.assistance is not None and visit.identities & policy.assistance.identities:
        rule_a = policy.assistance
        owed = round_fen(rule_a.ratio * Decimal(max(0, burden - critical)))
        assistance = max(0, min(owed, rule_a.annual_cap_fen - year.assistance_paid_fen))

    fund = hifp + critical + assistance
    personal = sums.medfee_sumamt - fund
    account = min(visit.account_balance_fen, max(personal, 0)) if visit.use_account else 0
    ratio = (
        (Decimal(hifp) / Decimal(base)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        if base > 0
        else ZERO
    )
    return Result(
        sums=sums,
        act_pay_dedc=dedc,
        hifp_pay=hifp,
        pool_unlimited=pool,
        tier_steps=tuple(steps),
        cap_applied=hifp < pool,
        critical_illness_fund=critical_fund,
        critical_illness_pay=critical,
        maf_pay=assistance,
        fund_pay_sumamt=fund,
        psn_part_amt=personal,
        acct_pay=account,
        psn_cash_pay=personal - account,
        balc=visit.account_balance_fen - account,
        pool_prop_selfpay=ratio,
        burden_fen=burden,
    )


# --- Policies: identity, checks and selection -------------------------------------------------


@dataclass(frozen=True)
class PolicyKey:
    """What a policy applies to; the most specific stored key matching a visit wins."""

    insuplc_admdvs: str
    insutype: str
    year: int
    med_type: str
    psn_type: str
    """Empty = every person type."""

    @property
    def policy_id(self) -> str:
        """Stable id across versions."""
        return "-".join(
            (
                self.insuplc_admdvs,
                self.insutype,
                str(self.year),
                self.med_type,
                self.psn_type or "all",
            )
        )


class PolicyProblem(ValueError):
    """A policy that cannot be applied; the message names the field."""


def check_key(key: PolicyKey) -> None:
    """Refuse keys no visit could ever match."""
    if len(key.insuplc_admdvs) != 6 or not key.insuplc_admdvs.isdigit():
        raise PolicyProblem("insuplc_admdvs: must be a six-digit area or province code")
    if key.insutype not in INSUTYPES:
        raise PolicyProblem(f"insutype: must be one of {', '.join(INSUTYPES)}")
    if not 2000 <= key.year <= 2100:
        raise PolicyProblem("year: must be between 2000 and 2100")
    if key.med_type not in MED_TYPES:
        raise PolicyProblem(f"med_type: must be one of {', '.join(MED_TYPES)}")
    if key.psn_type and key.psn_type not in PSN_TYPES:
        raise PolicyProblem(f"psn_type: must be one of {', '.join(PSN_TYPES)} or empty")


def check_tiers(tiers: tuple[Tier, ...], where: str) -> None:
    """At least one tier; rising edges; only the last is open; ratios within [0, 1]."""
    if not tiers:
        raise PolicyProblem(f"{where}: at least one tier is needed")
    previous = 0
    for index, tier in enumerate(tiers):
        if not ZERO <= tier.ratio <= ONE:
            raise PolicyProblem(f"{where}[{index}].ratio: must be between 0 and 1")
        if tier.upto_fen is None:
            if index != len(tiers) - 1:
                raise PolicyProblem(f"{where}[{index}].upto: only the last tier may be open")
        elif tier.upto_fen <= previous:
            raise PolicyProblem(f"{where}[{index}].upto: edges must rise")
        else:
            previous = tier.upto_fen


def check_policy(policy: Policy) -> None:
    """Refuse a policy whose figures make no sense."""
    for level, amount in policy.deductible_fen.items():
        if level not in (1, 2, 3):
            raise PolicyProblem(f"deductibles: level {level} is not 1, 2 or 3")
        if amount < 0:
            raise PolicyProblem(f"deductibles: level {level} is negative")
    if policy.repeat_deductible_factor < 0:
        raise PolicyProblem("repeat_deductible_factor: must not be negative")
    check_tiers(policy.tiers, "tiers")
    if policy.annual_cap_fen < 0:
        raise PolicyProblem("annual_cap: must not be negative")
    for category, points in policy.reduction.items():
        if category not in TEMPORARY_CATEGORIES:
            raise PolicyProblem(
                f"reductions: {category!r} is not one of {', '.join(sorted(TEMPORARY_CATEGORIES))}"
            )
        if not ZERO <= points <= ONE:
            raise PolicyProblem(f"reductions.{category}: must be between 0 and 1")
    if policy.critical_illness is not None:
        _check_critical_illness(policy.critical_illness)
    if policy.assistance is not None:
        if not ZERO <= policy.assistance.ratio <= ONE:
            raise PolicyProblem("assistance.ratio: must be between 0 and 1")
        if policy.assistance.annual_cap_fen < 0:
            raise PolicyProblem("assistance.annual_cap: must not be negative")


def _check_critical_illness(rule: CriticalIllness) -> None:
    if rule.fund not in CRITICAL_FUNDS:
        raise PolicyProblem(f"critical_illness.fund: must be one of {', '.join(CRITICAL_FUNDS)}")
    if rule.threshold_fen < 0 or rule.annual_cap_fen < 0:
        raise PolicyProblem("critical_illness: threshold and annual_cap must not be negative")
    check_tiers(rule.tiers, "critical_illness.tiers")


def choose_policy(
    candidates: Iterable[PolicyKey], insuplc_admdvs: str, psn_type: str
) -> PolicyKey | None:
    """The most specific key: the pooling area before its province, a named person type before
    the catch-all. Candidates already match insutype, year and medical type."""

    def rank(key: PolicyKey) -> tuple[int, int] | None:
        if key.insuplc_admdvs == insuplc_admdvs:
            area = 0
        elif key.insuplc_admdvs == insuplc_admdvs[:2] + "0000":
            area = 1
        else:
            return None
        if key.psn_type == psn_type:
            return area, 0
        return (area, 1) if not key.psn_type else None

    ranked = [(r, key) for key in candidates if (r := rank(key)) is not None]
    return min(ranked, key=lambda pair: pair[0])[1] if ranked else None


def reduction_category(filing_category: str | None, emergency: bool) -> str | None:
    """Whose reduction applies: a temporary filing's category; an emergency without a filing
    takes the emergency reduction; long-term filers take none."""
    if filing_category is None:
        return EMERGENCY if emergency else None
    return filing_category if filing_category in TEMPORARY_CATEGORIES else None


# --- Accumulators -----------------------------------------------------------------------------


def year_after(year: YearToDate, result: Result, inpatient: bool, sign: int = 1) -> YearToDate:
    """The accumulators after adding (sign 1) or giving back (sign -1) one settlement."""
    return dataclasses.replace(
        year,
        fund_paid_fen=year.fund_paid_fen + sign * result.hifp_pay,
        inpatient_settlements=year.inpatient_settlements + (sign if inpatient else 0),
        burden_fen=year.burden_fen + sign * result.burden_fen,
        critical_paid_fen=year.critical_paid_fen + sign * result.critical_illness_pay,
        assistance_paid_fen=year.assistance_paid_fen + sign * result.maf_pay,
    )


# --- The national output: fund breakdown and explanation ----------------------------------------


@dataclass(frozen=True)
class FundShare:
    """One setldetail entry."""

    fund_pay_type: str
    name: str
    amount_fen: int
    inscp_fen: int


def fund_shares(result: Result, insutype: str) -> list[FundShare]:
    """The funds that paid, in the national order: pool, critical illness, assistance, account."""
    inscp = result.sums.inscp_scp_amt
    shares = []
    if result.hifp_pay:
        code, name = POOLED_FUND.get(insutype, POOLED_FUND["310"])
        shares.append(FundShare(code, name, result.hifp_pay, inscp))
    if result.critical_illness_pay:
        code, name = CRITICAL_FUND[result.critical_illness_fund]
        shares.append(FundShare(code, name, result.critical_illness_pay, result.burden_fen))
    if result.maf_pay:
        remaining = result.burden_fen - result.critical_illness_pay
        shares.append(FundShare(*ASSISTANCE_FUND, result.maf_pay, remaining))
    if result.acct_pay:
        shares.append(FundShare(*ACCOUNT_FUND, result.acct_pay, 0))
    return shares


@dataclass(frozen=True)
class Step:
    """One step of a settlement's computation, for ExplainSettlement."""

    kind: str
    """deductible, tier, annual_cap, critical_illness, assistance or account."""
    base_fen: int
    ratio: Decimal | None
    amount_fen: int
    description: str


def explain(
    result: Result, policy: Policy, visit: Visit, year: YearToDate, category: str | None
) -> list[Step]:
    """Each step of settle() in words and figures."""
    level_dedc = policy.deductible_fen.get(visit.institution_level, 0)
    taken = deductible(policy, visit, year)
    words = f"level {visit.institution_level} deductible {yuan(level_dedc)}"
    if taken != level_dedc:
        words += (
            f" × repeat factor {policy.repeat_deductible_factor} "
            f"(inpatient settlement {year.inpatient_settlements + 1} of the year) = {yuan(taken)}"
        )
    words += f"; taken up to the in-scope amount {yuan(result.sums.inscp_scp_amt)}"
    steps = [Step("deductible", result.sums.inscp_scp_amt, None, result.act_pay_dedc, words)]
    reduction = policy.reduction.get(category or "", ZERO)
    for index, tier in enumerate(result.tier_steps):
        note = f" after the {category} reduction of {reduction}" if reduction else ""
        steps.append(
            Step(
                "tier",
                tier.segment_fen,
                tier.ratio,
                round_fen(tier.paid),
                f"tier {index + 1}: {yuan(tier.segment_fen)} at {tier.ratio}{note}",
            )
        )
    room = max(0, policy.annual_cap_fen - year.fund_paid_fen)
    steps.append(
        Step(
            "annual_cap",
            result.pool_unlimited,
            None,
            result.hifp_pay,
            f"pooled fund {yuan(result.pool_unlimited)} (tiers summed, rounded once); "
            f"annual cap {yuan(policy.annual_cap_fen)}, already paid {yuan(year.fund_paid_fen)}, "
            f"room {yuan(room)}" + (" — cap applied" if result.cap_applied else ""),
        )
    )
    if policy.critical_illness is not None:
        rule = policy.critical_illness
        steps.append(
            Step(
                "critical_illness",
                result.burden_fen,
                None,
                result.critical_illness_pay,
                f"{rule.fund}: annual burden {yuan(year.burden_fen)} → "
                f"{yuan(year.burden_fen + result.burden_fen)} against threshold "
                f"{yuan(rule.threshold_fen)}; annual cap {yuan(rule.annual_cap_fen)}, "
                f"already paid {yuan(year.critical_paid_fen)}",
            )
        )
    if policy.assistance is not None:
        rule_a = policy.assistance
        holds = bool(visit.identities & rule_a.identities)
        remaining = max(0, result.burden_fen - result.critical_illness_pay)
        steps.append(
            Step(
                "assistance",
                remaining,
                rule_a.ratio if holds else None,
                result.maf_pay,
                (
                    f"{rule_a.ratio} of the remaining burden {yuan(remaining)}; annual cap "
                    f"{yuan(rule_a.annual_cap_fen)}, already paid {yuan(year.assistance_paid_fen)}"
                )
                if holds
                else "the person holds no qualifying identity",
            )
        )
    steps.append(
        Step(
            "account",
            result.psn_part_amt,
            None,
            result.acct_pay,
            (
                f"personal account: balance {yuan(visit.account_balance_fen)} → {yuan(result.balc)}"
                if visit.use_account
                else "the person did not ask to use the personal account"
            ),
        )
    )
    return steps
