"""Clearing rules that need neither gRPC nor a database."""

from __future__ import annotations

import datetime as dt

from services.common.values import SHANGHAI


def period_of(moment: dt.datetime) -> str:
    """The clearing period (YYYY-MM) a moment belongs to: its month in Asia/Shanghai."""
    return f"{moment.astimezone(SHANGHAI):%Y-%m}"


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
