"""Reads and writes of the identity tables. Receives a session; never commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import GrowingTables
from services.common.driver import DriverPool, DriverStatement
from services.identity.logic import (
    CardRecord,
    CardStatus,
    InsuranceRecord,
    InsuranceStatus,
    PersonRecord,
)
from services.identity.models import AreaRow, CardRow, InsuranceRow, PersonRow, VoucherRow

# Rows per multi-row INSERT / IN (...) list: well under every backend's parameter limit.
_CHUNK = 500


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insurance_record(row: Any) -> InsuranceRecord:
    return InsuranceRecord(
        insutype=row.insutype,
        psn_type=row.psn_type,
        status=InsuranceStatus(row.status),
        insuplc_admdvs=row.insuplc_admdvs,
        balc_fen=row.balc_fen,
        idet_types=tuple(filter(None, row.idet_types.split(";"))),
    )


def _person_record(
    row: Any, insurances: Sequence[InsuranceRecord], cards: Sequence[CardRecord]
) -> PersonRecord:
    return PersonRecord(
        psn_no=row.psn_no,
        psn_cert_type=row.psn_cert_type,
        certno=row.certno,
        psn_name=row.psn_name,
        gend=row.gend,
        brdy=row.brdy,
        naty=row.naty,
        insurances=tuple(insurances),
        cards=tuple(cards),
    )


def _insured_person_statement(key: str) -> Select[Any]:
    """A person's row once per insurance record (once with NULLs when there is none), with the
    insured area's name; `key` is the persons column matched against :key."""
    persons = PersonRow.__table__
    insurances = InsuranceRow.__table__
    areas = AreaRow.__table__
    joined = persons.outerjoin(insurances, insurances.c.psn_no == persons.c.psn_no).outerjoin(
        areas, areas.c.admdvs == insurances.c.insuplc_admdvs
    )
    return (
        select(
            persons,
            *(column for column in insurances.c if column.key != "psn_no"),
            areas.c.name.label("area_name"),
        )
        .select_from(joined)
        .where(persons.c[key] == bindparam("key"))
        .order_by(insurances.c.insutype)
    )


# Built once: they run on most calls of the service, on asyncpg directly where it is given.
_INSURED_BY_PSN_NO = _insured_person_statement("psn_no")
_INSURED_BY_CERTNO = _insured_person_statement("certno")
_INSURED_ON_DRIVER = {
    statement: DriverStatement.of(statement, ["key"])
    for statement in (_INSURED_BY_PSN_NO, _INSURED_BY_CERTNO)
}


class IdentityRepository:
    """Queries over persons, insurance records, cards, vouchers and areas. With `driver` (a
    read outside any transaction, on PostgreSQL), the lookup of a person runs on asyncpg
    directly (services.common.driver)."""

    def __init__(self, session: AsyncSession, driver: DriverPool | None = None) -> None:
        self._session = session
        self._driver = driver

    async def persons(self, psn_nos: Sequence[str]) -> dict[str, PersonRecord]:
        """Persons (with insurance records and cards) by psn_no; unknown ones are absent. Rows
        are read as plain tuples: no ORM objects are needed to build records."""
        found: dict[str, PersonRecord] = {}
        persons, insurances_table, cards_table = (
            PersonRow.__table__,
            InsuranceRow.__table__,
            CardRow.__table__,
        )
        for chunk in _chunks(list(dict.fromkeys(psn_nos))):
            people = (
                await self._session.execute(select(persons).where(persons.c.psn_no.in_(chunk)))
            ).all()
            insurances = (
                await self._session.execute(
                    select(insurances_table)
                    .where(insurances_table.c.psn_no.in_(chunk))
                    .order_by(insurances_table.c.psn_no, insurances_table.c.insutype)
                )
            ).all()
            cards = (
                await self._session.execute(
                    select(cards_table)
                    .where(cards_table.c.psn_no.in_(chunk))
                    .order_by(cards_table.c.psn_no, cards_table.c.card_no)
                )
            ).all()
            by_person: dict[str, tuple[list[InsuranceRecord], list[CardRecord]]] = {
                row.psn_no: ([], []) for row in people
            }
            for insurance in insurances:
                by_person[insurance.psn_no][0].append(_insurance_record(insurance))
            for card in cards:
                by_person[card.psn_no][1].append(
                    CardRecord(
                        card.card_no, card.card_sn, CardStatus(card.status), card.replaced_by
                    )
                )
            for person in people:
                rows, person_cards = by_person[person.psn_no]
                found[person.psn_no] = _person_record(person, rows, person_cards)
        return found

    async def insured_person(
        self, *, psn_no: str = "", certno: str = ""
    ) -> tuple[PersonRecord, dict[str, str]] | None:
        """One person, by psn_no or by ID number, with their insurance records (no cards) and
        the names of the areas insuring them (admdvs -> name), in one statement: the lookup of
        every 1101, admission and settlement."""
        statement = _INSURED_BY_CERTNO if certno else _INSURED_BY_PSN_NO
        key = {"key": certno or psn_no}
        if self._driver is not None:
            rows = await self._driver.fetch(_INSURED_ON_DRIVER[statement], key)
        else:
            rows = list((await self._session.execute(statement, key)).all())
        if not rows:
            return None
        insured = [row for row in rows if row.insutype is not None]
        person = _person_record(rows[0], [_insurance_record(row) for row in insured], [])
        return person, {row.insuplc_admdvs: row.area_name or "" for row in insured}

    async def psn_nos_by_certno(self, certnos: Sequence[str]) -> dict[str, str]:
        """certno -> psn_no for the ID numbers already registered."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(certnos)):
            rows = await self._session.execute(
                select(PersonRow.certno, PersonRow.psn_no).where(PersonRow.certno.in_(chunk))
            )
            found.update({certno: psn_no for certno, psn_no in rows})
        return found

    async def card(
        self, card_no: str, *, for_update: bool = False
    ) -> tuple[CardRecord, str] | None:
        """A card and its holder's psn_no."""
        query = select(CardRow).where(CardRow.card_no == card_no)
        if for_update:
            query = query.with_for_update()
        row = await self._session.scalar(query)
        if row is None:
            return None
        return CardRecord(
            row.card_no, row.card_sn, CardStatus(row.status), row.replaced_by
        ), row.psn_no

    async def card_owners(self, card_nos: Sequence[str]) -> dict[str, str]:
        """card_no -> psn_no for the card numbers already registered."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(card_nos)):
            rows = await self._session.execute(
                select(CardRow.card_no, CardRow.psn_no).where(CardRow.card_no.in_(chunk))
            )
            found.update({card_no: psn_no for card_no, psn_no in rows})
        return found

    async def set_card(self, card_no: str, *, status: CardStatus, replaced_by: str = "") -> None:
        """Change a card's status (and successor)."""
        await self._session.execute(
            update(CardRow)
            .where(CardRow.card_no == card_no)
            .values(status=int(status), replaced_by=replaced_by)
        )

    async def add_card(self, psn_no: str, card: CardRecord) -> None:
        """Register a new card for a person."""
        self._session.add(
            CardRow(
                card_no=card.card_no,
                psn_no=psn_no,
                card_sn=card.card_sn,
                status=int(card.status),
                replaced_by=card.replaced_by,
            )
        )
        await self._session.flush()

    def growing_tables(self) -> GrowingTables:
        """Statistics upkeep for an upload that writes many persons in this transaction."""
        return GrowingTables(self._session, PersonRow, InsuranceRow, CardRow)

    async def replace_persons(
        self, persons: Sequence[PersonRecord], stored: Collection[str]
    ) -> None:
        """Write persons, replacing the earlier version of those in `stored` (psn_nos) with their
        insurance records and cards."""
        psn_nos = [person.psn_no for person in persons if person.psn_no in stored]
        for chunk in _chunks(psn_nos):
            await self._session.execute(delete(CardRow).where(CardRow.psn_no.in_(chunk)))
            await self._session.execute(delete(InsuranceRow).where(InsuranceRow.psn_no.in_(chunk)))
            await self._session.execute(delete(PersonRow).where(PersonRow.psn_no.in_(chunk)))
        people = [
            {
                "psn_no": p.psn_no,
                "psn_cert_type": p.psn_cert_type,
                "certno": p.certno,
                "psn_name": p.psn_name,
                "gend": p.gend,
                "naty": p.naty,
                "brdy": p.brdy,
            }
            for p in persons
        ]
        insurances = [
            {
                "psn_no": p.psn_no,
                "insutype": row.insutype,
                "psn_type": row.psn_type,
                "status": int(row.status),
                "insuplc_admdvs": row.insuplc_admdvs,
                "balc_fen": row.balc_fen,
                "idet_types": ";".join(row.idet_types),
            }
            for p in persons
            for row in p.insurances
        ]
        cards = [
            {
                "card_no": card.card_no,
                "psn_no": p.psn_no,
                "card_sn": card.card_sn,
                "status": int(card.status),
                "replaced_by": card.replaced_by,
            }
            for p in persons
            for card in p.cards
        ]
        for table, rows in ((PersonRow, people), (InsuranceRow, insurances), (CardRow, cards)):
            for start in range(0, len(rows), _CHUNK):
                await self._session.execute(insert(table), rows[start : start + _CHUNK])

    async def area(self, admdvs: str) -> AreaRow | None:
        """One area."""
        return await self._session.get(AreaRow, admdvs)

    async def areas(self, codes: Sequence[str]) -> dict[str, AreaRow]:
        """Areas by code; unknown codes are absent."""
        found: dict[str, AreaRow] = {}
        for chunk in _chunks(list(codes)):
            rows = await self._session.scalars(select(AreaRow).where(AreaRow.admdvs.in_(chunk)))
            found.update({row.admdvs: row for row in rows})
        return found

    async def put_areas(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Insert or replace areas given as (admdvs, name, prov_admdvs)."""
        codes = [code for code, _, _ in rows]
        for chunk in _chunks(codes):
            await self._session.execute(delete(AreaRow).where(AreaRow.admdvs.in_(chunk)))
        values = [{"admdvs": c, "name": n, "prov_admdvs": p} for c, n, p in rows]
        for start in range(0, len(values), _CHUNK):
            await self._session.execute(insert(AreaRow), values[start : start + _CHUNK])

    async def add_voucher(self, voucher_id: str, psn_no: str, expires_at: dt.datetime) -> None:
        """Remember who a voucher was issued to."""
        self._session.add(VoucherRow(voucher_id=voucher_id, psn_no=psn_no, expires_at=expires_at))
        await self._session.flush()

    async def voucher_holder(self, voucher_id: str) -> str | None:
        """psn_no of an issued voucher."""
        result = await self._session.scalar(
            select(VoucherRow.psn_no).where(VoucherRow.voucher_id == voucher_id)
        )
        return None if result is None else str(result)

    async def forget_expired_vouchers(self, now: dt.datetime) -> None:
        """Drop voucher rows that can no longer be presented."""
        await self._session.execute(delete(VoucherRow).where(VoucherRow.expires_at < now))
