"""Which areas and days a filing covers: the rule filing answers by, and the one settlement
applies to its copy of filing's live filings (services.settlement.filing_ends)."""

from __future__ import annotations

import datetime as dt


def covers(dest_admdvs: str, treatment_admdvs: str) -> bool:
    """Whether a destination includes a treatment area.

    A province code (PP0000) covers the whole province, a city code (PPCC00) its districts and
    counties (PPCCxx), any other code only itself.
    """
    if dest_admdvs.endswith("0000"):
        return treatment_admdvs[:2] == dest_admdvs[:2]
    if dest_admdvs.endswith("00"):
        return treatment_admdvs[:4] == dest_admdvs[:4]
    return treatment_admdvs == dest_admdvs


def filing_covers(
    dest_admdvs: str,
    begin_date: dt.date,
    end_date: dt.date | None,
    treatment_admdvs: str,
    day: dt.date,
) -> bool:
    """Whether an active filing to `dest_admdvs`, valid from `begin_date` to `end_date` (None:
    open-ended), lets its person be settled in `treatment_admdvs` on `day`."""
    return (
        covers(dest_admdvs, treatment_admdvs)
        and begin_date <= day
        and (end_date is None or day <= end_date)
    )
