"""Reads and writes of the catalogue tables. Receives a session; never commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.catalogue.models import (
    CatalogueHeadRow,
    CatalogueItemRow,
    CatalogueVersionRow,
    InstitutionRow,
    ItemMappingRow,
)
from services.common.db import analyze

_CHUNK = 500
ITEM_FIELDS = (
    "list_type",
    "name",
    "item_class",
    "selfpay_prop",
    "price_cap_fen",
    "min_level",
    "med_types",
    "begin_date",
    "end_date",
)


@dataclass(frozen=True)
class StoredItem:
    """An item's content as stored (med_types ';'-joined, selfpay_prop a decimal string)."""

    med_list_codg: str
    list_type: str
    name: str
    item_class: int
    selfpay_prop: str
    price_cap_fen: int | None
    min_level: int
    med_types: str
    begin_date: dt.date
    end_date: dt.date | None

    def content(self) -> tuple[object, ...]:
        """Everything but the code, for change detection."""
        return tuple(getattr(self, name) for name in ITEM_FIELDS)


def _stored(row: CatalogueItemRow) -> StoredItem:
    return StoredItem(row.med_list_codg, *(getattr(row, name) for name in ITEM_FIELDS))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _at_version(version: int) -> object:
    return and_(
        CatalogueItemRow.version_from <= version,
        or_(CatalogueItemRow.version_to.is_(None), CatalogueItemRow.version_to > version),
    )


class CatalogueRepository:
    """Queries over catalogues, institutions and item mappings."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_head(self, prov_admdvs: str) -> int:
        """Lock the province's upload head (creating it) and return its current version."""
        head = select(CatalogueHeadRow.current_version).where(
            CatalogueHeadRow.prov_admdvs == prov_admdvs
        )
        version = await self._session.scalar(head.with_for_update())
        if version is None:
            await self._session.execute(
                insert(CatalogueHeadRow).values(prov_admdvs=prov_admdvs, current_version=0)
            )
            version = await self._session.scalar(head.with_for_update())
        return int(version or 0)

    async def set_head(self, prov_admdvs: str, version: int) -> None:
        """Make version current."""
        await self._session.execute(
            update(CatalogueHeadRow)
            .where(CatalogueHeadRow.prov_admdvs == prov_admdvs)
            .values(current_version=version)
        )

    async def current_version(self, prov_admdvs: str) -> int:
        """The province's current version (0 before the first upload)."""
        version = await self._session.scalar(
            select(CatalogueHeadRow.current_version).where(
                CatalogueHeadRow.prov_admdvs == prov_admdvs
            )
        )
        return int(version or 0)

    async def current_items(self, prov_admdvs: str) -> dict[str, tuple[int, StoredItem]]:
        """code -> (row id, item) of the current version."""
        rows = await self._session.scalars(
            select(CatalogueItemRow).where(
                CatalogueItemRow.prov_admdvs == prov_admdvs, CatalogueItemRow.version_to.is_(None)
            )
        )
        return {row.med_list_codg: (row.id, _stored(row)) for row in rows}

    async def close_items(self, ids: Sequence[int], version: int) -> None:
        """End the validity of rows at version (changed or removed items)."""
        for start in range(0, len(ids), _CHUNK):
            await self._session.execute(
                update(CatalogueItemRow)
                .where(CatalogueItemRow.id.in_(ids[start : start + _CHUNK]))
                .values(version_to=version)
            )

    async def insert_items(
        self, prov_admdvs: str, version: int, items: Sequence[StoredItem]
    ) -> None:
        """Store new or changed items valid from version."""
        rows = [
            {
                "prov_admdvs": prov_admdvs,
                "med_list_codg": item.med_list_codg,
                "version_from": version,
                "version_to": None,
                **{name: getattr(item, name) for name in ITEM_FIELDS},
            }
            for item in items
        ]
        for start in range(0, len(rows), _CHUNK):
            await self._session.execute(insert(CatalogueItemRow), rows[start : start + _CHUNK])

    async def refresh_statistics(self) -> None:
        """Let PostgreSQL's planner see a bulk upload at once (else it may scan every item)."""
        await analyze(self._session, CatalogueItemRow)

    async def add_version(self, row: CatalogueVersionRow) -> None:
        """Record an upload."""
        self._session.add(row)
        await self._session.flush()

    async def versions(
        self, prov_admdvs: str, before: int, limit: int
    ) -> list[CatalogueVersionRow]:
        """Versions newest first, below `before` (0 = from the newest)."""
        query = select(CatalogueVersionRow).where(CatalogueVersionRow.prov_admdvs == prov_admdvs)
        if before:
            query = query.where(CatalogueVersionRow.version < before)
        rows = await self._session.scalars(
            query.order_by(CatalogueVersionRow.version.desc()).limit(limit)
        )
        return list(rows)

    async def items_at(
        self, prov_admdvs: str, version: int, codes: Sequence[str]
    ) -> dict[str, StoredItem]:
        """The items of a version among codes."""
        found: dict[str, StoredItem] = {}
        for chunk in _chunks(list(dict.fromkeys(codes))):
            rows = await self._session.scalars(
                select(CatalogueItemRow).where(
                    CatalogueItemRow.prov_admdvs == prov_admdvs,
                    CatalogueItemRow.med_list_codg.in_(chunk),
                    _at_version(version),  # type: ignore[arg-type]
                )
            )
            found.update({row.med_list_codg: _stored(row) for row in rows})
        return found

    async def changed_since(
        self, prov_admdvs: str, since: int, version: int, after_code: str, limit: int
    ) -> list[StoredItem]:
        """Items of `version` that appeared or changed after `since`, by code."""
        rows = await self._session.scalars(
            select(CatalogueItemRow)
            .where(
                CatalogueItemRow.prov_admdvs == prov_admdvs,
                _at_version(version),  # type: ignore[arg-type]
                CatalogueItemRow.version_from > since,
                CatalogueItemRow.med_list_codg > after_code,
            )
            .order_by(CatalogueItemRow.med_list_codg)
            .limit(limit)
        )
        return [_stored(row) for row in rows]

    async def removed_since(self, prov_admdvs: str, since: int, version: int) -> list[str]:
        """Codes present at `since` and absent from `version`."""
        present_then = select(CatalogueItemRow.med_list_codg).where(
            CatalogueItemRow.prov_admdvs == prov_admdvs,
            _at_version(since),  # type: ignore[arg-type]
        )
        present_now = select(CatalogueItemRow.med_list_codg).where(
            CatalogueItemRow.prov_admdvs == prov_admdvs,
            _at_version(version),  # type: ignore[arg-type]
        )
        rows = await self._session.scalars(present_then.except_(present_now))
        return sorted(rows)

    async def institutions(self, codes: Sequence[str]) -> dict[str, InstitutionRow]:
        """Institutions by code."""
        found: dict[str, InstitutionRow] = {}
        for chunk in _chunks(list(codes)):
            rows = await self._session.scalars(
                select(InstitutionRow).where(InstitutionRow.fixmedins_code.in_(chunk))
            )
            found.update({row.fixmedins_code: row for row in rows})
        return found

    async def put_institutions(self, rows: Sequence[dict[str, object]]) -> None:
        """Insert or replace institutions given as column dicts."""
        codes = [str(row["fixmedins_code"]) for row in rows]
        for chunk in _chunks(codes):
            await self._session.execute(
                delete(InstitutionRow).where(InstitutionRow.fixmedins_code.in_(chunk))
            )
        for start in range(0, len(rows), _CHUNK):
            await self._session.execute(insert(InstitutionRow), list(rows[start : start + _CHUNK]))

    async def search_institutions(
        self,
        *,
        area_prefix: str,
        level: int,
        open_column: str,
        name_contains: str,
        on_date: dt.date,
        after_code: str,
        limit: int,
    ) -> list[InstitutionRow]:
        """Institutions matching every given criterion, by code."""
        query = select(InstitutionRow).where(
            InstitutionRow.begin_date <= on_date,
            or_(InstitutionRow.end_date.is_(None), InstitutionRow.end_date >= on_date),
            InstitutionRow.fixmedins_code > after_code,
        )
        if area_prefix:
            query = query.where(InstitutionRow.admdvs.startswith(area_prefix))
        if level:
            query = query.where(InstitutionRow.level == level)
        if open_column:
            query = query.where(getattr(InstitutionRow, open_column).is_(True))
        if name_contains:
            query = query.where(InstitutionRow.fixmedins_name.contains(name_contains))
        rows = await self._session.scalars(
            query.order_by(InstitutionRow.fixmedins_code).limit(limit)
        )
        return list(rows)

    async def mappings(self, fixmedins_code: str, codes: Sequence[str]) -> dict[str, str]:
        """The institution's own codes -> national codes, among codes."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(codes))):
            rows = await self._session.execute(
                select(ItemMappingRow.medins_list_codg, ItemMappingRow.med_list_codg).where(
                    ItemMappingRow.fixmedins_code == fixmedins_code,
                    ItemMappingRow.medins_list_codg.in_(chunk),
                )
            )
            found.update({own: national for own, national in rows})
        return found

    async def put_mappings(self, fixmedins_code: str, mappings: dict[str, str]) -> None:
        """Insert or replace mappings of one institution."""
        codes = list(mappings)
        for chunk in _chunks(codes):
            await self._session.execute(
                delete(ItemMappingRow).where(
                    ItemMappingRow.fixmedins_code == fixmedins_code,
                    ItemMappingRow.medins_list_codg.in_(chunk),
                )
            )
        rows = [
            {"fixmedins_code": fixmedins_code, "medins_list_codg": own, "med_list_codg": national}
            for own, national in mappings.items()
        ]
        for start in range(0, len(rows), _CHUNK):
            await self._session.execute(insert(ItemMappingRow), rows[start : start + _CHUNK])
