"""Every query of the clearing service."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from medsettle.clearing.v1 import ledger_pb2
from sqlalchemy import Integer, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clearing.logic import Entry, PairTotals
from services.clearing.models import (
    DisputeRow,
    LedgerEntryRow,
    PairSpendRow,
    PeriodRow,
    PrepaymentRow,
    PrepaymentWarningRow,
    StatementRow,
    TopUpRow,
    TreatmentConfirmationRow,
)
from services.common.db import insert_missing, upsert_constructor

_CANCELLED = ledger_pb2.LEDGER_EVENT_KIND_CANCELLED
_OPEN_DISPUTE = 1


Pair = tuple[int, str, str]
"""(year, insured province, treatment province): whose running total and prepayment it is."""


def _clearing_amount() -> Any:
    """logic.clearing_amount of a ledger entry, as SQL."""
    row = LedgerEntryRow
    return row.hifp_pay_fen + row.critical_pay_fen + row.maf_pay_fen + row.acct_pay_fen


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

    @property
    def session(self) -> AsyncSession:
        """The session (servicers add new rows through it)."""
        return self._session

    async def insert_entries(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert ledger entries (column values) in one statement, skipping every event id that
        is stored already or earlier in `rows`; the event ids this call inserted."""
        statement = (
            upsert_constructor(self._session)(LedgerEntryRow)
            .on_conflict_do_nothing(index_elements=[LedgerEntryRow.event_id])
            .returning(LedgerEntryRow.event_id)
        )
        return set(await self._session.scalars(statement, list(rows)))

    async def event_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The fingerprint each of these events was recorded with, for those recorded."""
        found = await self._session.execute(
            select(LedgerEntryRow.event_id, LedgerEntryRow.event_hash).where(
                LedgerEntryRow.event_id.in_(event_ids)
            )
        )
        return {event_id: event_hash for event_id, event_hash in found}

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

    # --- monthly clearing ---

    def _disputed(self) -> Any:
        return select(DisputeRow.setl_id).where(DisputeRow.state == _OPEN_DISPUTE)

    def _clearable(self, period: str) -> Any:
        """Entries the period's clearing covers: already in it, or uncleared from it or earlier
        and not under an open dispute."""
        return or_(
            LedgerEntryRow.cleared_period == period,
            (LedgerEntryRow.cleared_period.is_(None))
            & (LedgerEntryRow.period <= period)
            & LedgerEntryRow.setl_id.not_in(self._disputed()),
        )

    async def period(self, period: str, *, lock: bool = False) -> PeriodRow | None:
        """One period row."""
        query = select(PeriodRow).where(PeriodRow.period == period)
        if lock:
            query = query.with_for_update()
        return await self._session.scalar(query.execution_options(populate_existing=True))

    async def open_period(self, period: str) -> PeriodRow:
        """The period row, created OPEN when missing, locked."""
        await insert_missing(
            self._session,
            PeriodRow,
            {"period": period, "state": 1, "statement_hash": "", "run_request_id": ""},
        )
        row = await self.period(period, lock=True)
        assert row is not None
        return row

    async def treatment_provinces(self, period: str) -> list[str]:
        """Treatment provinces with entries the period's clearing covers."""
        query = select(LedgerEntryRow.treatment_prov).where(self._clearable(period)).distinct()
        return sorted(await self._session.scalars(query))

    async def confirmed_provinces(self, period: str) -> list[str]:
        """Treatment provinces that confirmed the period."""
        query = select(TreatmentConfirmationRow.province).where(
            TreatmentConfirmationRow.period == period
        )
        return sorted(await self._session.scalars(query))

    async def confirm_treatment(self, period: str, province: str, now: dt.datetime) -> None:
        """Record a treatment province's confirmation (a repeat changes nothing)."""
        await insert_missing(
            self._session,
            TreatmentConfirmationRow,
            {"period": period, "province": province, "confirmed_at": now},
        )

    async def assign_entries(self, period: str) -> None:
        """Put the clearable entries in the period and take disputed ones out of it."""
        await self._session.execute(
            update(LedgerEntryRow)
            .where(
                LedgerEntryRow.cleared_period == period,
                LedgerEntryRow.setl_id.in_(self._disputed()),
            )
            .values(cleared_period=None)
        )
        await self._session.execute(
            update(LedgerEntryRow)
            .where(
                LedgerEntryRow.cleared_period.is_(None),
                LedgerEntryRow.period <= period,
                LedgerEntryRow.setl_id.not_in(self._disputed()),
            )
            .values(cleared_period=period)
        )

    async def pair_totals(self, period: str) -> list[PairTotals]:
        """Sums per (insured province, treatment province) of the entries cleared in the period."""
        row = LedgerEntryRow
        query = (
            select(
                row.insured_prov,
                row.treatment_prov,
                func.count(),
                func.sum(row.medfee_sumamt_fen),
                func.sum(row.hifp_pay_fen),
                func.sum(row.critical_pay_fen),
                func.sum(row.maf_pay_fen),
                func.sum(row.acct_pay_fen),
            )
            .where(row.cleared_period == period)
            .group_by(row.insured_prov, row.treatment_prov)
            .order_by(row.insured_prov, row.treatment_prov)
        )
        return [
            PairTotals(a, b, int(n), int(m), int(h), int(c), int(f), int(acct))
            for a, b, n, m, h, c, f, acct in await self._session.execute(query)
        ]

    async def statements(self, period: str) -> list[StatementRow]:
        """The period's statements, by insured then treatment province."""
        query = (
            select(StatementRow)
            .where(StatementRow.period == period)
            .order_by(StatementRow.insured_prov, StatementRow.treatment_prov)
        )
        return list(await self._session.scalars(query))

    async def replace_statements(self, period: str, rows: list[StatementRow]) -> None:
        """The period's statements become these."""
        await self._session.execute(delete(StatementRow).where(StatementRow.period == period))
        self._session.add_all(rows)

    async def cleared_entries(self, setl_id: str, period: str) -> list[LedgerEntryRow]:
        """A settlement's entries cleared in the period."""
        query = select(LedgerEntryRow).where(
            LedgerEntryRow.setl_id == setl_id, LedgerEntryRow.cleared_period == period
        )
        return list(await self._session.scalars(query))

    async def dispute(self, setl_id: str, *, lock: bool = False) -> DisputeRow | None:
        """A settlement's dispute row."""
        query = select(DisputeRow).where(DisputeRow.setl_id == setl_id)
        if lock:
            query = query.with_for_update()
        return await self._session.scalar(query.execution_options(populate_existing=True))

    async def release_entries(self, setl_id: str, period: str) -> None:
        """Take a settlement's entries out of the period they were cleared in."""
        await self._session.execute(
            update(LedgerEntryRow)
            .where(LedgerEntryRow.setl_id == setl_id, LedgerEntryRow.cleared_period == period)
            .values(cleared_period=None)
        )

    # --- prepayments ---

    async def prepayment(
        self, year: int, insured_prov: str, treatment_prov: str, *, lock: bool = False
    ) -> PrepaymentRow | None:
        """One pair's prepayment of a year."""
        query = select(PrepaymentRow).where(
            PrepaymentRow.year == year,
            PrepaymentRow.insured_prov == insured_prov,
            PrepaymentRow.treatment_prov == treatment_prov,
        )
        if lock:
            query = query.with_for_update()
        return await self._session.scalar(query.execution_options(populate_existing=True))

    async def prepayments(self, year: int) -> list[PrepaymentRow]:
        """A year's prepayments, by insured then treatment province."""
        query = (
            select(PrepaymentRow)
            .where(PrepaymentRow.year == year)
            .order_by(PrepaymentRow.insured_prov, PrepaymentRow.treatment_prov)
        )
        return list(await self._session.scalars(query))

    async def year_spend(self, year: int) -> dict[tuple[str, str], int]:
        """Funds plus account per (insured, treatment) province over a year's ledger."""
        row = LedgerEntryRow
        query = (
            select(row.insured_prov, row.treatment_prov, func.sum(_clearing_amount()))
            .where(row.period.like(f"{year:04d}-%"))
            .group_by(row.insured_prov, row.treatment_prov)
        )
        return {(a, b): int(total) for a, b, total in await self._session.execute(query)}

    async def uncleared_spend(self, year: int, insured_prov: str, treatment_prov: str) -> int:
        """A pair's spend of the year not yet in a closed clearing period (its running total)."""
        total = await self._session.scalar(
            select(PairSpendRow.uncleared_fen).where(
                PairSpendRow.year == year,
                PairSpendRow.insured_prov == insured_prov,
                PairSpendRow.treatment_prov == treatment_prov,
            )
        )
        return int(total or 0)

    async def add_spends(self, amounts: dict[Pair, int]) -> dict[Pair, int]:
        """Add new entries' amounts to their pairs' running totals; the totals after.

        One upsert for all pairs, in key order, which also locks each pair's total until the
        transaction ends: events of one pair are counted one after the other, and concurrent
        batches lock the pairs they share in the same order.
        """
        statement = _add_spend_statement(upsert_constructor(self._session))
        totals = await self._session.execute(
            statement,
            [
                {
                    "year": year,
                    "insured_prov": insured_prov,
                    "treatment_prov": treatment_prov,
                    "uncleared_fen": amounts[(year, insured_prov, treatment_prov)],
                }
                for year, insured_prov, treatment_prov in sorted(amounts)
            ],
        )
        return {
            (year, insured, treatment): int(total) for year, insured, treatment, total in totals
        }

    async def locked_prepayments(self, pairs: Sequence[Pair]) -> list[PrepaymentRow]:
        """The prepayments these pairs have, locked in key order until the transaction ends."""
        key = (PrepaymentRow.year, PrepaymentRow.insured_prov, PrepaymentRow.treatment_prov)
        query = (
            select(PrepaymentRow)
            .where(tuple_(*key).in_(sorted(pairs)))
            .order_by(*key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return list(await self._session.scalars(query))

    async def take_off_closed(self, period: str) -> set[int]:
        """Take a closing period's entries off their pairs' running totals (each in the year of
        its own month, which for a late entry is not the period's); the years touched."""
        row = LedgerEntryRow
        year = func.substr(row.period, 1, 4)
        query = (
            select(year, row.insured_prov, row.treatment_prov, func.sum(_clearing_amount()))
            .where(row.cleared_period == period)
            .group_by(year, row.insured_prov, row.treatment_prov)
            # Key order, as add_spends locks pairs: a close and a batch of events sharing two
            # pairs then cannot each hold one and wait for the other.
            .order_by(year, row.insured_prov, row.treatment_prov)
        )
        years = set()
        for year_text, insured, treatment, total in (await self._session.execute(query)).all():
            await self._session.execute(
                update(PairSpendRow)
                .where(
                    PairSpendRow.year == int(year_text),
                    PairSpendRow.insured_prov == insured,
                    PairSpendRow.treatment_prov == treatment,
                )
                .values(uncleared_fen=PairSpendRow.uncleared_fen - int(total))
            )
            years.add(int(year_text))
        return years

    async def top_up(self, request_id: str) -> TopUpRow | None:
        """A top-up by its request id."""
        return await self._session.get(TopUpRow, request_id)

    async def warnings(self, year: int) -> list[PrepaymentWarningRow]:
        """A year's warnings, oldest first."""
        query = (
            select(PrepaymentWarningRow)
            .where(PrepaymentWarningRow.year == year)
            .order_by(PrepaymentWarningRow.warning_id)
        )
        return list(await self._session.scalars(query))

    async def daily_statistics(
        self, first_day: str, last_day: str, party: str | None
    ) -> list[tuple[Any, ...]]:
        """(day, insured, treatment, med_type, settlements, cancellations, medfee, fund, hifp,
        critical, maf, acct) per group, net of cancellations; `party` limits to a province."""
        row = LedgerEntryRow
        cancelled = (row.kind == _CANCELLED).cast(Integer)
        query = (
            select(
                row.event_day,
                row.insured_prov,
                row.treatment_prov,
                row.med_type,
                func.count() - func.sum(cancelled),
                func.sum(cancelled),
                func.sum(row.medfee_sumamt_fen),
                func.sum(row.fund_pay_sumamt_fen),
                func.sum(row.hifp_pay_fen),
                func.sum(row.critical_pay_fen),
                func.sum(row.maf_pay_fen),
                func.sum(row.acct_pay_fen),
            )
            .where(row.event_day >= first_day, row.event_day <= last_day)
            .group_by(row.event_day, row.insured_prov, row.treatment_prov, row.med_type)
            .order_by(row.event_day, row.insured_prov, row.treatment_prov, row.med_type)
        )
        if party is not None:
            query = query.where(
                or_(row.insured_prov == f"{party}0000", row.treatment_prov == f"{party}0000")
            )
        return [tuple(found) for found in await self._session.execute(query)]


@functools.cache
def _add_spend_statement(dialect_insert: Any) -> Any:
    """The running total's upsert, built once: a Core statement on the table, its values bound
    at execution. Built per call through the ORM it was half of recording a ledger event."""
    table = PairSpendRow.__table__
    columns = ("year", "insured_prov", "treatment_prov", "uncleared_fen")
    insert = dialect_insert(table).values({column: bindparam(column) for column in columns})
    return insert.on_conflict_do_update(
        index_elements=list(columns[:3]),
        set_={"uncleared_fen": table.c.uncleared_fen + insert.excluded.uncleared_fen},
    ).returning(table.c.year, table.c.insured_prov, table.c.treatment_prov, table.c.uncleared_fen)
