"""Filing rules (policy.md §1.3): categories, validity, one active filing, lock periods, coverage.

Pure functions over plain values; the servicer maps protos, the repository maps rows.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from enum import IntEnum

from services.common.coverage import covers, filing_covers
from services.filing.errors import (
    FilingInvalid,
    FilingLocked,
    LongTermEndDate,
    NotCrossProvince,
    TemporaryFilingTooShort,
)

_AREA = re.compile(r"\d{6}")
# How far a filing's first day may lie from today (retroactive filing covers a recent admission).
MAX_BEGIN_DISTANCE = dt.timedelta(days=366)
TEMPORARY_MONTHS = 6
EVERY_AREA = "000000"
"""The area a watcher of every filing names (settlement follows filings' ends nationally)."""


class Category(IntEnum):
    """Filing category, values as in medsettle.filing.v1.FilingCategory."""

    RETIRED_RELOCATED = 1
    LONG_TERM_RESIDENT = 2
    STATIONED_WORKER = 3
    REFERRAL = 4
    EMERGENCY = 5
    OTHER_TEMPORARY = 6

    @property
    def long_term(self) -> bool:
        """Long-term categories are open-ended and locked for a period after filing."""
        return self in (
            Category.RETIRED_RELOCATED,
            Category.LONG_TERM_RESIDENT,
            Category.STATIONED_WORKER,
        )


class Status(IntEnum):
    """Filing status, values as in medsettle.filing.v1.FilingStatus."""

    ACTIVE = 1
    REVOKED = 2
    SUPERSEDED = 3


class ChangeType(IntEnum):
    """Kind of change in the change log, values as in FilingChangeType."""

    CREATED = 1
    REVOKED = 2
    SUPERSEDED = 3


@dataclass(frozen=True)
class NewFiling:
    """What a caller asks to file."""

    psn_no: str
    category: Category
    insuplc_admdvs: str
    dest_admdvs: str
    begin_date: dt.date
    end_date: dt.date | None
    channel: int


@dataclass(frozen=True)
class FilingRecord:
    """A stored filing."""

    filing_id: str
    psn_no: str
    category: Category
    insuplc_admdvs: str
    dest_admdvs: str
    begin_date: dt.date
    end_date: dt.date | None
    status: Status
    channel: int
    created_at: dt.datetime
    ended_at: dt.datetime | None = None
    superseded_by: str = ""


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, clamped to the month's last day (Aug 31 + 6 = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def validate(new: NewFiling, today: dt.date) -> dt.date | None:
    """Check a new filing and return its end date (the temporary default filled in)."""
    if not new.psn_no or len(new.psn_no) > 30:
        raise FilingInvalid("psn_no must have 1 to 30 characters")
    for field, value in (("insuplc_admdvs", new.insuplc_admdvs), ("dest_admdvs", new.dest_admdvs)):
        if not _AREA.fullmatch(value):
            raise FilingInvalid(f"{field} must be a six-digit area code", field=field)
    if new.dest_admdvs[:2] == new.insuplc_admdvs[:2]:
        raise NotCrossProvince(
            f"destination {new.dest_admdvs} is in the insured province; "
            "a cross-province filing is not needed",
            destAdmdvs=new.dest_admdvs,
        )
    if abs(new.begin_date - today) > MAX_BEGIN_DISTANCE:
        raise FilingInvalid("begin_date must lie within a year of today", field="begin_date")
    if new.category.long_term:
        if new.end_date is not None:
            raise LongTermEndDate("a long-term filing is open-ended: leave end_date empty")
        return None
    shortest = add_months(new.begin_date, TEMPORARY_MONTHS)
    if new.end_date is None:
        return shortest
    if new.end_date < shortest:
        raise TemporaryFilingTooShort(
            f"a temporary filing is valid for at least {TEMPORARY_MONTHS} months: "
            f"end_date must be on or after {shortest.isoformat()}",
            earliestEndDate=shortest.isoformat(),
        )
    return new.end_date


def locked_until(filing: FilingRecord, lock_months: int, created_on: dt.date) -> dt.date | None:
    """Until when a long-term filing may be neither changed nor revoked (None: not locked)."""
    if not filing.category.long_term or lock_months <= 0:
        return None
    return add_months(created_on, lock_months)


def check_changeable(
    filing: FilingRecord, lock_months: int, created_on: dt.date, today: dt.date
) -> None:
    """Refuse to supersede or revoke a long-term filing inside its lock period."""
    until = locked_until(filing, lock_months, created_on)
    if until is not None and today < until:
        raise FilingLocked(
            f"long-term filing {filing.filing_id} cannot be changed or revoked before "
            f"{until.isoformat()}",
            filingId=filing.filing_id,
            lockedUntil=until.isoformat(),
        )


def is_effective(filing: FilingRecord, treatment_admdvs: str, day: dt.date) -> bool:
    """Whether an active filing lets the person be settled in an area on a day."""
    return filing.status is Status.ACTIVE and filing_covers(
        filing.dest_admdvs, filing.begin_date, filing.end_date, treatment_admdvs, day
    )


def watch_matches(watched_admdvs: str, dest_admdvs: str) -> bool:
    """Whether a change of a filing into dest_admdvs concerns a watcher of watched_admdvs.

    A province watcher sees every filing into its province; a city watcher sees filings into the
    city and filings into the whole province (they cover the city too); EVERY_AREA sees all.
    """
    if watched_admdvs == EVERY_AREA:
        return True
    if watched_admdvs.endswith("0000"):
        return dest_admdvs[:2] == watched_admdvs[:2]
    return covers(dest_admdvs, watched_admdvs) or covers(watched_admdvs, dest_admdvs)
