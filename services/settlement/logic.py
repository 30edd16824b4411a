"""The settlement computation of bundle-format.md ("How a settlement is computed"), in fen.

Pure: the caller supplies the line sums (from the catalogue's classification), the insured
place's policy, the person's annual accumulators before this settlement, and the visit facts.
Every step is recorded so a settlement can be explained line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

ONE = Decimal(1)
ZERO = Decimal(0)
# Temporary filing categories and the emergency flag take a reduction; long-term ones none.
EMERGENCY = "emergency"


def round_fen(value: Decimal) -> int:
    """Half-up to a whole fen."""
    return int(value.quantize(ONE, rounding=ROUND_HALF_UP))


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
