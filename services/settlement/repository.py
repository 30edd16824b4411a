"""Reads and writes of the settlement tables. Receives a session; never commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import (
    LockedRow,
    RowWrite,
    insert_rows,
    locked_row,
    locked_rows,
    transient_row,
    upsert_constructor,
    write_rows,
)
from services.common.driver import Driver, DriverStatement
from services.common.driver import insert_rows as driver_insert_rows
from services.settlement.models import (
    CANCELLED,
    LIVE,
    VISIT_CANCELLED,
    Base,
    FeeLineRow,
    FilingEndRow,
    FilingFeedRow,
    FollowedFilingRow,
    OutboxRow,
    PersonYearRow,
    PolicyRow,
    PolicyYearRow,
    SettlementRow,
    VisitRow,
)


class StoredLine(NamedTuple):
    """What an upload needs of a line already stored: to tell a repeat from a change, and the
    classification to answer it with."""

    content_hash: str
    classified: bytes


class SettlementRepository:
    """Every query of the settlement service. With `driver` (PostgreSQL), an admission's and an
    upload's statements run on asyncpg directly (services.common.driver), on a pool or in a
    transaction of the driver's, and return transient rows: give a driver only to the paths
    that change nothing they read through the ORM."""

    def __init__(self, session: AsyncSession, driver: Driver | None = None) -> None:
        self._session = session
        self._driver = driver

    # --- policies ---

    async def current_policies(self, policy_ids: Sequence[str]) -> dict[str, PolicyRow]:
        """The current version of each named policy that exists."""
        rows = await self._session.scalars(
            select(PolicyRow).where(PolicyRow.policy_id.in_(policy_ids), PolicyRow.current)
        )
        return {row.policy_id: row for row in rows}

    async def add_policy_versions(self, rows: Sequence[PolicyRow]) -> None:
        """Store new versions and make them the current ones (a version above 1 supersedes)."""
        superseded = [row.policy_id for row in rows if row.version > 1]
        if superseded:
            await self._session.execute(
                update(PolicyRow)
                .where(PolicyRow.policy_id.in_(superseded), PolicyRow.current)
                .values(current=False)
            )
        self._session.add_all(rows)

    async def policy_candidates(
        self, areas: Sequence[str], insutype: str, year: int, med_type: str
    ) -> list[PolicyRow]:
        """Current policies of these areas for the insurance type, year and medical type."""
        rows = await self._session.scalars(
            select(PolicyRow).where(
                PolicyRow.insuplc_admdvs.in_(areas),
                PolicyRow.insutype == insutype,
                PolicyRow.year == year,
                PolicyRow.med_type == med_type,
                PolicyRow.current,
            )
        )
        return list(rows)

    async def policy_page(self, area: str, after_id: str, limit: int) -> list[PolicyRow]:
        """Current policies of an area (or of a province's areas), by id."""
        query = select(PolicyRow).where(PolicyRow.current, PolicyRow.policy_id > after_id)
        if area.endswith("0000"):
            query = query.where(PolicyRow.insuplc_admdvs.startswith(area[:2]))
        else:
            query = query.where(PolicyRow.insuplc_admdvs == area)
        rows = await self._session.scalars(query.order_by(PolicyRow.policy_id).limit(limit))
        return list(rows)

    # --- visits ---

    async def visit(self, mdtrt_id: str, *, lock: bool = False) -> VisitRow | None:
        """One visit; locked until commit when asked (settling and cancelling serialize on it)."""
        statement = _VISIT_LOCKED if lock else _VISIT
        if self._driver is not None:
            rows = await self._driver.fetch(_ON_DRIVER[statement], {"mdtrt_id": mdtrt_id})
            return transient_row(VisitRow, rows[0]) if rows else None
        return await self._session.scalar(statement, {"mdtrt_id": mdtrt_id})

    async def visit_by_request(self, request_id: str) -> VisitRow | None:
        """The visit an AdmitVisit request_id created."""
        if self._driver is not None:
            rows = await self._driver.fetch(_VISIT_BY_REQUEST_ON_DRIVER, {"request_id": request_id})
            return transient_row(VisitRow, rows[0]) if rows else None
        return await self._session.scalar(_VISIT_BY_REQUEST, {"request_id": request_id})

    async def open_visit_numbered(self, fixmedins_code: str, ipt_otp_no: str) -> VisitRow | None:
        """The institution's visit with this hospital number that is not cancelled."""
        return await self._session.scalar(
            _OPEN_VISIT_NUMBERED, {"fixmedins_code": fixmedins_code, "ipt_otp_no": ipt_otp_no}
        )

    async def add_visit(self, row: VisitRow) -> None:
        """Insert a new visit now, as one Core statement: admission skips the unit of work."""
        values = {column.key: getattr(row, column.key) for column in VisitRow.__table__.columns}
        await write_rows(self._session, [RowWrite.insert(VisitRow, values)])

    def add(self, row: object) -> None:
        """Stage a new row."""
        self._session.add(row)

    # --- fee lines ---

    async def add_fee_lines(self, rows: list[dict[str, Any]]) -> None:
        """Insert fee lines (column values, in upload order) in one execution on PostgreSQL, past
        the ORM's bulk machinery (services.common.db.insert_rows)."""
        if self._driver is not None:
            await driver_insert_rows(self._driver, _FEE_LINES, rows)
        else:
            await insert_rows(self._session, _FEE_LINES, rows)

    async def visit_and_stored_lines(
        self, mdtrt_id: str
    ) -> tuple[VisitRow | None, dict[str, StoredLine]]:
        """The visit and its live lines by feedetl_sn, in one statement: an upload's look
        before classifying. Not for use under the visit's lock: lines committed while such a
        statement waited for the lock would be missing (its join reads as of its start), so the
        locked check reads them in a statement of their own (`stored_lines`)."""
        if self._driver is not None:
            found = await self._driver.fetch(_VISIT_AND_LINES_ON_DRIVER, {"mdtrt_id": mdtrt_id})
            if not found:
                return None, {}
            lines = (
                (row.feedetl_sn, row.content_hash, row.classified)
                for row in found
                if row.feedetl_sn is not None
            )
            return transient_row(VisitRow, found[0]), _by_serial(lines)
        rows = (await self._session.execute(_VISIT_AND_LINES, {"mdtrt_id": mdtrt_id})).all()
        if not rows:
            return None, {}
        return rows[0][0], _by_serial(row[1:] for row in rows if row[1] is not None)

    async def stored_lines(self, mdtrt_id: str) -> dict[str, StoredLine]:
        """The visit's live lines by feedetl_sn (empty when it has none)."""
        if self._driver is not None:
            found = await self._driver.fetch(_ON_DRIVER[_STORED_LINES], {"mdtrt_id": mdtrt_id})
            return _by_serial(found)
        rows = await self._session.execute(_STORED_LINES, {"mdtrt_id": mdtrt_id})
        return _by_serial(rows)

    async def live_classified(self, mdtrt_id: str) -> list[bytes]:
        """The classified form (ClassifiedFee) of the visit's live lines, in upload order: all
        that settling needs, without building a row object per line."""
        lines = await self._session.scalars(_LIVE_CLASSIFIED, {"mdtrt_id": mdtrt_id})
        return list(lines)

    async def cancel_lines(self, mdtrt_id: str, feedetl_sn: str, now: dt.datetime) -> int:
        """Cancel one live line (or all when feedetl_sn is empty); how many were cancelled."""
        statement = update(FeeLineRow).where(FeeLineRow.mdtrt_id == mdtrt_id, _IS_LIVE)
        if feedetl_sn:
            statement = statement.where(FeeLineRow.feedetl_sn == feedetl_sn)
        result = await self._session.execute(statement.values(status=CANCELLED, cancelled_at=now))
        return int(result.rowcount)  # type: ignore[attr-defined]

    # --- settlements ---

    async def settlement(self, setl_id: str) -> SettlementRow | None:
        """One settlement."""
        return await self._session.get(SettlementRow, setl_id)

    async def settlement_by_request(self, request_id: str) -> SettlementRow | None:
        """The settlement a SettleVisit request_id made."""
        return await self._session.scalar(_SETTLEMENT_BY_REQUEST, {"request_id": request_id})

    async def record_settlement(
        self,
        accumulators: Sequence[tuple[PersonYearRow | PolicyYearRow, dict[str, int]]],
        settlement: dict[str, Any],
        visit: VisitRow,
        event: dict[str, Any],
    ) -> None:
        """Write a settlement (column values) with all it changes: the locked accumulators'
        new values, the visit's setl_id and its ledger event in the outbox. Core statements,
        one on PostgreSQL: this is the settling path (services.common.db.write_rows)."""
        writes = [RowWrite.update(row, values) for row, values in accumulators]
        writes += [
            RowWrite.insert(SettlementRow, settlement),
            RowWrite.update(visit, {"setl_id": settlement["setl_id"]}),
            RowWrite.insert(OutboxRow, event),
        ]
        await write_rows(self._session, writes)

    async def settlement_and_visit(
        self, request_id: str, mdtrt_id: str
    ) -> tuple[SettlementRow | None, VisitRow | None]:
        """The settlement a SettleVisit request_id made and the visit: one statement, as the
        reads before a settling that asks filing."""
        found = (
            await self._session.execute(
                _SETTLEMENT_AND_VISIT, {"request_id": request_id, "mdtrt_id": mdtrt_id}
            )
        ).one()
        return found[0], found[1]

    async def locked_visit_for_settling(
        self, request_id: str, mdtrt_id: str
    ) -> tuple[SettlementRow | None, VisitRow | None, bool]:
        """The visit, locked until commit, the settlement a SettleVisit request_id made, and
        whether the visit's admission filing is known to have ended: one statement, as the
        first of a settling transaction."""
        found = (
            await self._session.execute(
                _VISIT_FOR_SETTLING, {"request_id": request_id, "mdtrt_id": mdtrt_id}
            )
        ).first()
        return (None, None, False) if found is None else (found[0], found[1], found[2] is not None)

    async def visit_and_filing_ended(self, mdtrt_id: str) -> tuple[VisitRow | None, bool]:
        """The visit and whether its admission filing is known to have ended (one statement)."""
        found = (await self._session.execute(_VISIT_AND_FILING_END, {"mdtrt_id": mdtrt_id})).first()
        return (None, False) if found is None else (found[0], found[1] is not None)

    # --- filing's change stream (filing_ends.py) ---

    async def filing_feed_cursor(self) -> int:
        """Where following filing's stream resumes (0: from the start of its log)."""
        cursor = await self._session.scalar(select(FilingFeedRow.cursor))
        return int(cursor or 0)

    async def record_filing_changes(
        self, live: Sequence[dict[str, Any]], ends: dict[str, int], cursor: int
    ) -> None:
        """Keep the live filings reported (FollowedFilingRow values), move ended ones
        (filing_id -> cursor) from them to the ended, and the cursor read up to. Replicas that
        follow the stream side by side record the same rows, so all of it is idempotent."""
        upsert = upsert_constructor(self._session)
        if live:
            await self._session.execute(upsert(FollowedFilingRow).on_conflict_do_nothing(), live)
        if ends:
            await self._session.execute(
                delete(FollowedFilingRow).where(FollowedFilingRow.filing_id.in_(list(ends)))
            )
            await self._session.execute(
                upsert(FilingEndRow).on_conflict_do_nothing(),
                [{"filing_id": filing_id, "cursor": at} for filing_id, at in ends.items()],
            )
        statement = upsert(FilingFeedRow).values(id=1, cursor=cursor)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[FilingFeedRow.id],
                set_={"cursor": statement.excluded.cursor},
                where=FilingFeedRow.cursor < statement.excluded.cursor,
            )
        )

    async def followed_filings(self, psn_no: str) -> list[FollowedFilingRow]:
        """The person's live filings as filing's stream reported them."""
        if self._driver is not None:
            rows = await self._driver.fetch(_FOLLOWED_FILINGS_ON_DRIVER, {"psn_no": psn_no})
            return [transient_row(FollowedFilingRow, row) for row in rows]
        return list(await self._session.scalars(_FOLLOWED_FILINGS, {"psn_no": psn_no}))

    async def settlement_by_cancel_request(self, request_id: str) -> SettlementRow | None:
        """The settlement a CancelSettlement request_id cancelled."""
        return await self._session.scalar(
            select(SettlementRow).where(SettlementRow.cancel_request_id == request_id)
        )

    # --- annual accumulators ---

    async def person_year(
        self, psn_no: str, insuplc_admdvs: str, year: int, opening_balance_fen: int
    ) -> PersonYearRow:
        """The person's accumulators for the year (opened with the account balance), locked."""
        return await locked_row(
            self._session,
            PersonYearRow,
            {"psn_no": psn_no, "insuplc_admdvs": insuplc_admdvs, "year": year},
            _opened_person_year(opening_balance_fen),
        )

    async def accumulators(
        self,
        psn_no: str,
        insuplc_admdvs: str,
        year: int,
        opening_balance_fen: int,
        policy: tuple[str, int],
    ) -> tuple[PersonYearRow, PolicyYearRow]:
        """`person_year` and `policy_year` (policy = (policy_id, annual_cap_fen)) together, locked
        in that order by one statement on PostgreSQL (the settling path); the rows are not in
        the session, and their changes are written with `record_settlement`."""
        person = {"psn_no": psn_no, "insuplc_admdvs": insuplc_admdvs, "year": year}
        person_year, policy_year = await locked_rows(
            self._session,
            [
                LockedRow(PersonYearRow, person, _opened_person_year(opening_balance_fen)),
                LockedRow(
                    PolicyYearRow,
                    {**person, "policy_id": policy[0]},
                    _opened_policy_year(policy[1]),
                ),
            ],
        )
        return person_year, policy_year

    async def policy_year(
        self, psn_no: str, insuplc_admdvs: str, year: int, policy_id: str, annual_cap_fen: int
    ) -> PolicyYearRow:
        """What the policy paid the person this year (created at zero when missing), locked."""
        return await locked_row(
            self._session,
            PolicyYearRow,
            {
                "psn_no": psn_no,
                "insuplc_admdvs": insuplc_admdvs,
                "year": year,
                "policy_id": policy_id,
            },
            _opened_policy_year(annual_cap_fen),
        )

    async def person_years(self, psn_no: str, year: int) -> list[PersonYearRow]:
        """The person's accumulators of a year (one per insured area)."""
        rows = await self._session.scalars(
            select(PersonYearRow)
            .where(PersonYearRow.psn_no == psn_no, PersonYearRow.year == year)
            .order_by(PersonYearRow.insuplc_admdvs)
        )
        return list(rows)

    async def policy_years(
        self, psn_no: str, insuplc_admdvs: str, year: int
    ) -> list[PolicyYearRow]:
        """Per-policy accumulators of a person's year in one area."""
        rows = await self._session.scalars(
            select(PolicyYearRow)
            .where(
                PolicyYearRow.psn_no == psn_no,
                PolicyYearRow.insuplc_admdvs == insuplc_admdvs,
                PolicyYearRow.year == year,
            )
            .order_by(PolicyYearRow.policy_id)
        )
        return list(rows)

    # --- outbox ---

    async def due_events(self, now: dt.datetime, limit: int) -> list[OutboxRow]:
        """Undelivered events whose next attempt is due, oldest first; rows other relays hold
        are skipped (PostgreSQL), so replicas never send the same event at the same time."""
        rows = await self._session.scalars(
            select(OutboxRow)
            .where(OutboxRow.delivered_at.is_(None), OutboxRow.next_attempt_at <= now)
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows)

    async def lease_events(self, ids: Sequence[int], until: dt.datetime) -> None:
        """Hold these events from every relay until `until`, in one statement (the unit of
        work flushed one UPDATE per event)."""
        if ids:
            await self._session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(ids)).values(next_attempt_at=until)
            )

    async def backlog(self) -> tuple[int, dt.datetime | None]:
        """Undelivered events and the creation time of the oldest."""
        count, oldest = (
            await self._session.execute(
                select(func.count(), func.min(OutboxRow.created_at)).where(
                    OutboxRow.delivered_at.is_(None)
                )
            )
        ).one()
        return int(count), oldest


def _by_serial(rows: Iterable[Any]) -> dict[str, StoredLine]:
    """Rows of `_STORED_LINE` (feedetl_sn, content_hash, classified) by feedetl_sn."""
    return {sn: StoredLine(content_hash, classified) for sn, content_hash, classified in rows}


def _opened_person_year(opening_balance_fen: int) -> dict[str, int]:
    """A person's accumulators when the year's first settlement opens them."""
    return {
        "burden_fen": 0,
        "critical_paid_fen": 0,
        "assistance_paid_fen": 0,
        "account_balance_fen": max(0, opening_balance_fen),
    }


def _opened_policy_year(annual_cap_fen: int) -> dict[str, int]:
    """A policy's accumulators of a person when the year's first settlement opens them."""
    return {"fund_paid_fen": 0, "inpatient_settlements": 0, "annual_cap_fen": annual_cap_fen}


# Live lines are asked for with the status written into the SQL, not bound: PostgreSQL's generic
# plan of a prepared statement can use the partial index on live lines (status = 1) only so.
# With a parameter it planned every execution anew, 0.1-0.25 ms of its CPU each time.
_IS_LIVE = FeeLineRow.status == literal_column(str(LIVE))


def _live_lines(*selected: Any) -> Any:
    """SELECT `selected` of a visit's live fee lines (visit bound as mdtrt_id), in upload order."""
    return (
        select(*selected)
        .where(FeeLineRow.mdtrt_id == bindparam("mdtrt_id"), _IS_LIVE)
        .order_by(FeeLineRow.id)
    )


# Built once, their values bound at execution: the settling path's statements are then found
# compiled in SQLAlchemy's cache without being built and hashed again on every call.
_VISIT = select(VisitRow).where(VisitRow.mdtrt_id == bindparam("mdtrt_id"))
_VISIT_LOCKED = _VISIT.with_for_update()
_VISIT_BY_REQUEST = select(VisitRow).where(VisitRow.request_id == bindparam("request_id"))
_OPEN_VISIT_NUMBERED = select(VisitRow).where(
    VisitRow.fixmedins_code == bindparam("fixmedins_code"),
    VisitRow.ipt_otp_no == bindparam("ipt_otp_no"),
    VisitRow.status != VISIT_CANCELLED,
)
_SETTLEMENT_BY_REQUEST = select(SettlementRow).where(
    SettlementRow.request_id == bindparam("request_id")
)
# Both rows may be missing, so both are outer-joined to a one-row selectable.
_SETTLEMENT_AND_VISIT = (
    select(SettlementRow, VisitRow)
    .select_from(select(literal_column("1").label("one")).subquery())
    .outerjoin(SettlementRow, SettlementRow.request_id == bindparam("request_id"))
    .outerjoin(VisitRow, VisitRow.mdtrt_id == bindparam("mdtrt_id"))
)
# Only the visit is locked (PostgreSQL locks no row of an outer join's nullable side).
_VISIT_FOR_SETTLING = (
    select(SettlementRow, VisitRow, FilingEndRow.filing_id)
    .select_from(VisitRow)
    .outerjoin(FilingEndRow, FilingEndRow.filing_id == VisitRow.filing_id)
    .outerjoin(SettlementRow, SettlementRow.request_id == bindparam("request_id"))
    .where(VisitRow.mdtrt_id == bindparam("mdtrt_id"))
    .with_for_update(of=VisitRow)
)
_VISIT_AND_FILING_END = (
    select(VisitRow, FilingEndRow.filing_id)
    .outerjoin(FilingEndRow, FilingEndRow.filing_id == VisitRow.filing_id)
    .where(VisitRow.mdtrt_id == bindparam("mdtrt_id"))
)
_STORED_LINE = (FeeLineRow.feedetl_sn, FeeLineRow.content_hash, FeeLineRow.classified)
# A visit with no live line is one row whose line columns are NULL.
_VISIT_AND_LINES = (
    select(VisitRow, *_STORED_LINE)
    .outerjoin(FeeLineRow, (FeeLineRow.mdtrt_id == VisitRow.mdtrt_id) & _IS_LIVE)
    .where(VisitRow.mdtrt_id == bindparam("mdtrt_id"))
    .order_by(FeeLineRow.id)
)
_STORED_LINES = _live_lines(*_STORED_LINE)
_FEE_LINES = Base.metadata.tables[FeeLineRow.__tablename__]
_LIVE_CLASSIFIED = _live_lines(FeeLineRow.classified)
_FOLLOWED_FILINGS = select(FollowedFilingRow).where(FollowedFilingRow.psn_no == bindparam("psn_no"))
# The statements of an admission and an upload, for asyncpg (services.common.driver).
_VISIT_BY_REQUEST_ON_DRIVER = DriverStatement.of(_VISIT_BY_REQUEST, ["request_id"])
_VISIT_AND_LINES_ON_DRIVER = DriverStatement.of(_VISIT_AND_LINES, ["mdtrt_id"])
_FOLLOWED_FILINGS_ON_DRIVER = DriverStatement.of(_FOLLOWED_FILINGS, ["psn_no"])
_ON_DRIVER = {
    statement: DriverStatement.of(statement, ["mdtrt_id"])
    for statement in (_VISIT, _VISIT_LOCKED, _STORED_LINES)
}
