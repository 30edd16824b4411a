"""Every query of the clearing service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from medsettle.clearing.v1 import ledger_pb2
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.clearing.logic import Entry
from services.clearing.models import LedgerEntryRow

_CANCELLED = ledger_pb2.LEDGER_EVENT_KIND_CANCELLED


def _entry(row: LedgerEntryRow) -> Entry:
    return Entry(
        setl_id=row.setl_id,
        mdtrt_id=row.mdtrt_id,
        psn_no=row.psn_no,
        cancellation=row.kind == _CANCELLED,
        medfee=row.medfee_sumamt_fen,
        fund=row.fund_pay_sumamt_fen,
        acct=row.acct_pay_fen,
    )


class ClearingRepository:
    """Queries over one session; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def institution_entries(
        self,
        fixmedins_code: str,
        start: dt.datetime,
        stop: dt.datetime,
        med_types: Sequence[str],
        insutype: str = "",
    ) -> list[Entry]:
        """An institution's ledger entries with start <= event_time < stop."""
        query = select(LedgerEntryRow).where(
            LedgerEntryRow.fixmedins_code == fixmedins_code,
            LedgerEntryRow.event_time >= start,
            LedgerEntryRow.event_time < stop,
            LedgerEntryRow.med_type.in_(med_types),
        )
        if insutype:
            query = query.where(LedgerEntryRow.insutype == insutype)
        rows = await self._session.scalars(query.order_by(LedgerEntryRow.event_id))
        return [_entry(row) for row in rows]

    async def cancelled_before(self, setl_ids: Sequence[str], stop: dt.datetime) -> set[str]:
        """Which of these settlements had a cancellation recorded before `stop`."""
        found: set[str] = set()
        ids = list(setl_ids)
        for offset in range(0, len(ids), 1000):
            query = select(LedgerEntryRow.setl_id).where(
                LedgerEntryRow.setl_id.in_(ids[offset : offset + 1000]),
                LedgerEntryRow.kind == _CANCELLED,
                LedgerEntryRow.event_time < stop,
            )
            found.update(await self._session.scalars(query))
        return found
