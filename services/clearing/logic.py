"""Clearing rules that need neither gRPC nor a database."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from services.common.values import SHANGHAI, yuan_text


def period_of(moment: dt.datetime) -> str:
    """The clearing period (YYYY-MM) a moment belongs to: its month in Asia/Shanghai."""
    return f"{moment.astimezone(SHANGHAI):%Y-%m}"


def day_of(moment: dt.datetime) -> str:
    """The day (YYYY-MM-DD) of a moment in Asia/Shanghai."""
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d}"


def event_problem(
    event_id: str, setl_id: str, areas: tuple[str, str], funds: tuple[int, int, int], total: int
) -> str:
    """Why a ledger event cannot be recorded, or "" when it can."""
    if not event_id or len(event_id) > 40:
        return "event_id is required, at most 40 characters"
    if not setl_id:
        return "setl_id is required"
    for area in areas:
        if len(area) != 6 or not area.isdigit():
            return f"area {area!r} is not a six-digit code"
    if sum(funds) != total:
        return "fund_pay_sumamt is not hifp_pay + critical_illness_pay + maf_pay"
    return ""


# --- reconciliation (3201 / 3202) ---

MAX_RANGE_DAYS = 366
MAX_STATISTICS_DAYS = 92
MAX_DETAIL_LINES = 10_000
OUTPATIENT_TYPES = ("11", "14")
INPATIENT_TYPES = ("21",)


def med_types_of(clr_type: str) -> tuple[str, ...]:
    """The medical types a clearing category covers ("" = all)."""
    if clr_type == "21":
        return INPATIENT_TYPES
    if clr_type == "11":
        return OUTPATIENT_TYPES
    return (*OUTPATIENT_TYPES, *INPATIENT_TYPES)


def day_range(begin: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first moment, moment after the last day) of a range of Asia/Shanghai days, in UTC."""
    start = dt.datetime.combine(begin, dt.time(), SHANGHAI)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), SHANGHAI)
    return start.astimezone(dt.UTC), stop.astimezone(dt.UTC)


def range_problem(begin: dt.date, end: dt.date) -> str:
    """Why a reconciliation range is refused, or ""."""
    if end < begin:
        return "end_date is before begin_date"
    if (end - begin).days >= MAX_RANGE_DAYS:
        return f"a range covers at most {MAX_RANGE_DAYS} days"
    return ""


@dataclass(frozen=True)
class Figures:
    """Counts and sums of one side of a reconciliation, in fen."""

    count: int = 0
    medfee: int = 0
    fund: int = 0
    acct: int = 0

    def plus(self, medfee: int, fund: int, acct: int) -> Figures:
        """These figures with one more entry."""
        return Figures(self.count + 1, self.medfee + medfee, self.fund + fund, self.acct + acct)


@dataclass(frozen=True)
class Entry:
    """A ledger entry as reconciliation reads it (cancellations carry negated amounts)."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    cancellation: bool
    medfee: int
    fund: int
    acct: int


def platform_totals(entries: list[Entry], *, include_cancellations: bool) -> Figures:
    """The ledger's figures: every entry (net) or only settlements that were not cancelled."""
    cancelled = {entry.setl_id for entry in entries if entry.cancellation}
    figures = Figures()
    for entry in entries:
        counted = include_cancellations or (
            not entry.cancellation and entry.setl_id not in cancelled
        )
        if counted:
            figures = figures.plus(entry.medfee, entry.fund, entry.acct)
    return figures


def totals_difference(platform: Figures, institution: Figures) -> str:
    """What differs between the two sides' totals, in words ("" when balanced)."""
    parts = []
    for name, ours, theirs in (
        ("fixmedins_setl_cnt", platform.count, institution.count),
        ("medfee_sumamt", platform.medfee, institution.medfee),
        ("fund_pay_sumamt", platform.fund, institution.fund),
        ("acct_pay", platform.acct, institution.acct),
    ):
        if ours != theirs:
            shown = (
                (str(ours), str(theirs))
                if name == "fixmedins_setl_cnt"
                else (
                    yuan_text(ours),
                    yuan_text(theirs),
                )
            )
            parts.append(f"{name}: platform {shown[0]}, institution {shown[1]}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Line:
    """One settlement as a side of a detail reconciliation has it."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    medfee: int
    fund: int
    acct: int
    cancelled: bool


BALANCED, PLATFORM_ONLY, INSTITUTION_ONLY, MISMATCH = "0", "1", "2", "3"


def platform_lines(settlements: list[Entry], cancelled: set[str]) -> dict[str, Line]:
    """The ledger's settlements by setl_id, marked cancelled when a cancellation was recorded."""
    return {
        entry.setl_id: Line(
            entry.setl_id,
            entry.mdtrt_id,
            entry.psn_no,
            entry.medfee,
            entry.fund,
            entry.acct,
            entry.setl_id in cancelled,
        )
        for entry in settlements
        if not entry.cancellation
    }


def detail_differences(
    platform: dict[str, Line], institution: list[Line]
) -> tuple[int, list[tuple[str, Line | None, Line | None, str]]]:
    """(balanced count, differences ordered by setl_id): (result, platform, institution, memo)."""
    theirs = {line.setl_id: line for line in institution}
    balanced = 0
    found: list[tuple[str, Line | None, Line | None, str]] = []
    for setl_id in sorted(platform.keys() | theirs.keys()):
        ours, their = platform.get(setl_id), theirs.get(setl_id)
        if their is None:
            found.append((PLATFORM_ONLY, ours, None, "settled on the platform, not listed"))
        elif ours is None:
            found.append((INSTITUTION_ONLY, None, their, "not settled on the platform"))
        else:
            memo = _line_difference(ours, their)
            if memo:
                found.append((MISMATCH, ours, their, memo))
            else:
                balanced += 1
    return balanced, found


def _line_difference(ours: Line, theirs: Line) -> str:
    parts = [
        f"{name}: platform {yuan_text(a)}, institution {yuan_text(b)}"
        for name, a, b in (
            ("medfee_sumamt", ours.medfee, theirs.medfee),
            ("fund_pay_sumamt", ours.fund, theirs.fund),
            ("acct_pay", ours.acct, theirs.acct),
        )
        if a != b
    ]
    if ours.cancelled != theirs.cancelled:
        state = "cancelled" if ours.cancelled else "not cancelled"
        parts.append(f"the settlement is {state} on the platform")
    return "; ".join(parts)


# --- monthly clearing between provinces ---

_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def period_problem(period: str) -> str:
    """Why a period is not "YYYY-MM", or ""."""
    return "" if _PERIOD.fullmatch(period) else "period must be YYYY-MM"


@dataclass(frozen=True)
class PairTotals:
    """What one insured province owes one treatment province, in fen."""

    insured_prov: str
    treatment_prov: str
    entry_count: int
    medfee: int
    hifp: int
    critical: int
    maf: int
    acct: int

    @property
    def clearing(self) -> int:
        """What the insured province pays for these entries."""
        return clearing_amount(self.hifp, self.critical, self.maf, self.acct)


def clearing_amount(hifp_fen: int, critical_fen: int, maf_fen: int, acct_fen: int) -> int:
    """What the insured province pays the treatment province for an entry, which is also what
    the entry spends of the pair's prepayment: the funds and the personal account, not the
    person's cash."""
    return hifp_fen + critical_fen + maf_fen + acct_fen


def statement_hash(period: str, pairs: list[PairTotals]) -> str:
    """SHA-256 over the period's statements in a fixed order: equal ledgers, equal hashes."""
    lines = sorted(
        f"{p.insured_prov}>{p.treatment_prov}:{p.entry_count}:{p.medfee}:{p.hifp}:{p.critical}:"
        f"{p.maf}:{p.acct}"
        for p in pairs
    )
    return hashlib.sha256("\n".join([period, *lines]).encode()).hexdigest()


@dataclass(frozen=True)
class Position:
    """A province's net position: owed to it as treatment province minus owed by it as insured."""

    province: str
    receivable: int
    payable: int

    @property
    def net(self) -> int:
        """receivable - payable."""
        return self.receivable - self.payable


def net_positions(pairs: list[PairTotals]) -> list[Position]:
    """Every province's position; they sum to exactly zero (each amount is counted once as
    receivable and once as payable)."""
    receivable: dict[str, int] = {}
    payable: dict[str, int] = {}
    for pair in pairs:
        receivable[pair.treatment_prov] = receivable.get(pair.treatment_prov, 0) + pair.clearing
        payable[pair.insured_prov] = payable.get(pair.insured_prov, 0) + pair.clearing
    provinces = sorted(receivable.keys() | payable.keys())
    return [Position(p, receivable.get(p, 0), payable.get(p, 0)) for p in provinces]


def transfers(positions: list[Position]) -> list[tuple[str, bool, int]]:
    """(province, pays into the central account, amount): one per province with a non-zero
    position, so at most N transfers instead of one per province pair."""
    return [(p.province, p.net < 0, abs(p.net)) for p in positions if p.net]


# --- prepayments (先预付、后清算) ---

NORMAL, YELLOW, RED = 1, 2, 3
_RATIO_CAP = 99_999  # N5,4: 9.9999


def prepayment_from_spend(last_year_fen: int) -> int:
    """Two months of last year's average monthly spend, rounded half up to the fen."""
    return max(0, (last_year_fen + 3) // 6)  # 2 x spend / 12 = spend / 6


def usage_level(spend_fen: int, amount_fen: int) -> int:
    """RED at >= 90% of the prepayment, YELLOW at >= 70%, else NORMAL (exact, in integers)."""
    if spend_fen * 10 >= amount_fen * 9 and spend_fen > 0:
        return RED
    if spend_fen * 10 >= amount_fen * 7 and spend_fen > 0:
        return YELLOW
    return NORMAL


def usage_text(spend_fen: int, amount_fen: int) -> str:
    """spend / amount with four decimals, capped at 9.9999."""
    if amount_fen <= 0:
        ten_thousandths = 0 if spend_fen <= 0 else _RATIO_CAP
    else:
        ten_thousandths = min(
            _RATIO_CAP, max(0, (spend_fen * 10_000 + amount_fen // 2) // amount_fen)
        )
    return f"{ten_thousandths // 10_000}.{ten_thousandths % 10_000:04d}"


def crossed(before: int, after: int) -> list[int]:
    """The warning levels crossed upwards going from `before` to `after` (each once)."""
    return [level for level in (YELLOW, RED) if before < level <= after]
