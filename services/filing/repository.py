"""Reads and writes of the filing tables. Receives a session; never commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import GrowingTables
from services.common.values import stored_utc
from services.filing.logic import Category, FilingRecord, Status
from services.filing.models import FilingChangeRow, FilingRow, FilingSequenceRow

# Rows per multi-row INSERT / IN (...) list: well under every backend's parameter limit.
_CHUNK = 500


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _record(row: FilingRow) -> FilingRecord:
    return FilingRecord(
        filing_id=row.filing_id,
        psn_no=row.psn_no,
        category=Category(row.category),
        insuplc_admdvs=row.insuplc_admdvs,
        dest_admdvs=row.dest_admdvs,
        begin_date=row.begin_date,
        end_date=row.end_date,
        status=Status(row.status),
        channel=row.channel,
        created_at=stored_utc(row.created_at),
        ended_at=stored_utc(row.ended_at) if row.ended_at else None,
        superseded_by=row.superseded_by,
    )


# Built once, the person bound at execution: the lookup of every admission and settlement.
_ACTIVE_FILING = select(FilingRow).where(
    FilingRow.psn_no == bindparam("psn_no"), FilingRow.status == Status.ACTIVE
)


class FilingRepository:
    """Queries over filings and their change log."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def growing_tables(self) -> GrowingTables:
        """Statistics upkeep for an import that writes many filings in this transaction."""
        return GrowingTables(self._session, FilingRow, FilingChangeRow)

    async def lock_sequence(self) -> int:
        """Take the writers' lock and return the last cursor used."""
        query = select(FilingSequenceRow.last_cursor).where(FilingSequenceRow.id == 1)
        return int(await self._session.scalar(query.with_for_update()) or 0)

    async def set_sequence(self, last_cursor: int) -> None:
        """Record the last cursor used (under the lock of lock_sequence)."""
        await self._session.execute(
            update(FilingSequenceRow)
            .where(FilingSequenceRow.id == 1)
            .values(last_cursor=last_cursor)
        )

    async def get(self, filing_id: str) -> FilingRecord | None:
        """One filing."""
        row = await self._session.get(FilingRow, filing_id)
        return None if row is None else _record(row)

    async def active_for(self, psn_no: str) -> FilingRecord | None:
        """The person's active filing, if any."""
        row = await self._session.scalar(_ACTIVE_FILING, {"psn_no": psn_no})
        return None if row is None else _record(row)

    async def by_request_ids(
        self, request_ids: Sequence[str]
    ) -> dict[str, tuple[FilingRecord, str]]:
        """Filings created under these request ids, with the hash of each request."""
        found: dict[str, tuple[FilingRecord, str]] = {}
        for chunk in _chunks(request_ids):
            rows = await self._session.scalars(
                select(FilingRow).where(FilingRow.request_id.in_(chunk))
            )
            found.update({row.request_id: (_record(row), row.request_hash) for row in rows})
        return found

    async def active_for_each(self, psn_nos: Sequence[str]) -> dict[str, FilingRecord]:
        """The active filing of each person that has one."""
        found: dict[str, FilingRecord] = {}
        for chunk in _chunks(psn_nos):
            rows = await self._session.scalars(
                select(FilingRow).where(
                    FilingRow.psn_no.in_(chunk), FilingRow.status == Status.ACTIVE
                )
            )
            found.update({row.psn_no: _record(row) for row in rows})
        return found

    async def insert_many(self, filings: Sequence[tuple[FilingRecord, str, str]]) -> None:
        """Store new filings given as (filing, request_id, request_hash)."""
        rows = [
            {
                "filing_id": filing.filing_id,
                "psn_no": filing.psn_no,
                "category": int(filing.category),
                "insuplc_admdvs": filing.insuplc_admdvs,
                "dest_admdvs": filing.dest_admdvs,
                "begin_date": filing.begin_date,
                "end_date": filing.end_date,
                "status": int(filing.status),
                "channel": filing.channel,
                "created_at": filing.created_at,
                "ended_at": filing.ended_at,
                "superseded_by": filing.superseded_by,
                "request_id": request_id,
                "request_hash": request_hash,
            }
            for filing, request_id, request_hash in filings
        ]
        for start in range(0, len(rows), _CHUNK):
            await self._session.execute(insert(FilingRow), rows[start : start + _CHUNK])

    async def end(
        self, filing_id: str, status: Status, ended_at: dt.datetime, superseded_by: str = ""
    ) -> None:
        """Mark a filing revoked or superseded."""
        await self._session.execute(
            update(FilingRow)
            .where(FilingRow.filing_id == filing_id)
            .values(status=int(status), ended_at=ended_at, superseded_by=superseded_by)
        )

    async def add_changes(self, changes: Sequence[tuple[int, str, int, bytes]]) -> None:
        """Append (cursor, dest_admdvs, change_type, snapshot) entries to the change log."""
        rows = [
            {
                "cursor": cursor,
                "dest_prov": dest[:2],
                "dest_admdvs": dest,
                "change_type": change_type,
                "filing": snapshot,
            }
            for cursor, dest, change_type, snapshot in changes
        ]
        for start in range(0, len(rows), _CHUNK):
            await self._session.execute(insert(FilingChangeRow), rows[start : start + _CHUNK])

    async def changes_after(
        self, province_prefix: str | None, cursor: int, limit: int
    ) -> list[tuple[int, str, int, bytes]]:
        """Change-log entries into a province (None: anywhere) after a cursor: (cursor, dest,
        type, snapshot)."""
        query = select(
            FilingChangeRow.cursor,
            FilingChangeRow.dest_admdvs,
            FilingChangeRow.change_type,
            FilingChangeRow.filing,
        ).where(FilingChangeRow.cursor > cursor)
        if province_prefix is not None:
            query = query.where(FilingChangeRow.dest_prov == province_prefix)
        rows = await self._session.execute(query.order_by(FilingChangeRow.cursor).limit(limit))
        return [(int(c), str(d), int(t), bytes(f)) for c, d, t, f in rows]

    async def page(
        self, *, psn_no: str = "", dest_prefix: str = "", before_id: str = "", limit: int
    ) -> list[FilingRecord]:
        """Filings of a person or into an area, newest first, after a keyset position."""
        query = select(FilingRow)
        if psn_no:
            query = query.where(FilingRow.psn_no == psn_no)
        else:
            query = query.where(FilingRow.dest_admdvs.startswith(dest_prefix))
        if before_id:
            query = query.where(FilingRow.filing_id < before_id)
        rows = await self._session.scalars(query.order_by(FilingRow.filing_id.desc()).limit(limit))
        return [_record(row) for row in rows]
