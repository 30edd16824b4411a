"""Filing rules without I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.coverage import covers, filing_covers
from services.filing import logic
from services.filing.errors import (
    FilingInvalid,
    FilingLocked,
    LongTermEndDate,
    NotCrossProvince,
    TemporaryFilingTooShort,
)
from services.filing.logic import Category, FilingRecord, NewFiling, Status

pytestmark = pytest.mark.unit
TODAY = dt.date(2026, 11, 24)


def new(category: Category, end: dt.date | None = None, **changes: object) -> NewFiling:
    fields: dict[str, object] = {
        "psn_no": "P1",
        "category": category,
        "insuplc_admdvs": "131000",
        "dest_admdvs": "110000",
        "begin_date": TODAY,
        "end_date": end,
        "channel": 1,
    }
    fields.update(changes)
    return NewFiling(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 11, 24), 6, dt.date(2027, 5, 24)),
        (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
        (dt.date(2027, 8, 31), 6, dt.date(2028, 2, 29)),
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_last_day(day: dt.date, months: int, expected: dt.date) -> None:
    assert logic.add_months(day, months) == expected


@pytest.mark.parametrize(
    ("dest", "area", "covered"),
    [
        ("110000", "110105", True),
        ("110000", "120101", False),
        ("510100", "510104", True),
        ("510100", "510100", True),
        ("510100", "510700", False),
        ("510104", "510104", True),
        ("510104", "510105", False),
    ],
)
def test_destination_coverage(dest: str, area: str, covered: bool) -> None:
    assert covers(dest, area) is covered


def test_a_filing_covers_its_destination_only_on_the_days_of_its_validity() -> None:
    begin, end = dt.date(2026, 3, 1), dt.date(2026, 8, 31)
    days = [begin - dt.timedelta(days=1), begin, end, end + dt.timedelta(days=1)]
    assert [filing_covers("510100", begin, end, "510104", day) for day in days] == [
        False,
        True,
        True,
        False,
    ]
    assert filing_covers("510100", begin, None, "510104", dt.date(2031, 1, 1))  # long-term
    assert not filing_covers("510100", begin, None, "510700", dt.date(2026, 5, 1))


def test_temporary_filing_defaults_to_six_months_and_refuses_shorter() -> None:
    assert logic.validate(new(Category.REFERRAL), TODAY) == dt.date(2027, 5, 24)
    assert logic.validate(new(Category.REFERRAL, dt.date(2027, 6, 1)), TODAY) == dt.date(2027, 6, 1)
    with pytest.raises(TemporaryFilingTooShort, match="2027-05-24"):
        logic.validate(new(Category.OTHER_TEMPORARY, dt.date(2027, 5, 23)), TODAY)


def test_long_term_filing_is_open_ended() -> None:
    assert logic.validate(new(Category.RETIRED_RELOCATED), TODAY) is None
    with pytest.raises(LongTermEndDate):
        logic.validate(new(Category.STATIONED_WORKER, dt.date(2028, 1, 1)), TODAY)


def test_destination_must_be_in_another_province_and_codes_six_digits() -> None:
    with pytest.raises(NotCrossProvince):
        logic.validate(new(Category.REFERRAL, dest_admdvs="130100"), TODAY)
    with pytest.raises(FilingInvalid, match="dest_admdvs"):
        logic.validate(new(Category.REFERRAL, dest_admdvs="11000"), TODAY)
    with pytest.raises(FilingInvalid, match="begin_date"):
        logic.validate(new(Category.REFERRAL, begin_date=dt.date(2020, 1, 1)), TODAY)


def record(category: Category, **changes: object) -> FilingRecord:
    fields: dict[str, object] = {
        "filing_id": "F1",
        "psn_no": "P1",
        "category": category,
        "insuplc_admdvs": "131000",
        "dest_admdvs": "110000",
        "begin_date": dt.date(2026, 6, 1),
        "end_date": None if category.long_term else dt.date(2026, 12, 1),
        "status": Status.ACTIVE,
        "channel": 1,
        "created_at": dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
    }
    fields.update(changes)
    return FilingRecord(**fields)  # type: ignore[arg-type]


def test_long_term_filing_is_locked_for_its_period_and_temporary_never() -> None:
    filed = dt.date(2026, 6, 1)
    with pytest.raises(FilingLocked, match="2026-12-01"):
        logic.check_changeable(record(Category.LONG_TERM_RESIDENT), 6, filed, dt.date(2026, 11, 30))
    logic.check_changeable(record(Category.LONG_TERM_RESIDENT), 6, filed, dt.date(2026, 12, 1))
    logic.check_changeable(record(Category.LONG_TERM_RESIDENT), 0, filed, filed)
    logic.check_changeable(record(Category.REFERRAL), 6, filed, filed)


def test_effective_filing_needs_active_status_coverage_and_validity() -> None:
    temporary = record(Category.REFERRAL)
    assert logic.is_effective(temporary, "110105", dt.date(2026, 6, 1))
    assert logic.is_effective(temporary, "110105", dt.date(2026, 12, 1))
    assert not logic.is_effective(temporary, "110105", dt.date(2026, 12, 2))
    assert not logic.is_effective(temporary, "110105", dt.date(2026, 5, 31))
    assert not logic.is_effective(temporary, "120101", dt.date(2026, 7, 1))
    revoked = record(Category.REFERRAL, status=Status.REVOKED)
    assert not logic.is_effective(revoked, "110105", dt.date(2026, 7, 1))
    assert logic.is_effective(record(Category.RETIRED_RELOCATED), "110105", dt.date(2040, 1, 1))


def test_watchers_see_filings_that_cover_their_area() -> None:
    assert logic.watch_matches("510000", "510100")
    assert logic.watch_matches("510100", "510100")
    assert logic.watch_matches("510100", "510000")  # a whole-province filing covers the city
    assert logic.watch_matches("510100", "510104")  # a district of the watched city
    assert not logic.watch_matches("510100", "510700")
