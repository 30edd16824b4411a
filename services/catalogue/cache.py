"""Cache-aside reads for the classification hot path.

Keys carry the catalogue version (`item:{prov}:{version}:{code}`), so an upload makes a new set
of keys: a new version is served at once and never mixed with the old. The current version is
read from Redis without the in-process level (every replica sees an upload at once) and from the
database when Redis is down. Codes not in the catalogue are cached too (as an empty value).
"""

from __future__ import annotations

from collections.abc import Sequence

from medsettle.catalogue.v1 import catalogue_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.catalogue.mappers import institution_to_proto, stored_from_proto, stored_to_proto
from services.catalogue.repository import CatalogueRepository, StoredItem
from services.common.cache import Cache

ITEM_TTL_S = 3600.0
INSTITUTION_TTL_S = 60.0
MAPPING_TTL_S = 300.0
VERSION_TTL_S = 86400.0
_ABSENT = b""


def item_key(prov_admdvs: str, version: int, code: str) -> str:
    """Cache key of one item of one catalogue version."""
    return f"v1:item:{prov_admdvs}:{version}:{code}"


def version_key(prov_admdvs: str) -> str:
    """Cache key of a province's current version."""
    return f"v1:version:{prov_admdvs}"


def institution_key(code: str) -> str:
    """Cache key of an institution."""
    return f"v1:institution:{code}"


def mapping_key(fixmedins_code: str, own_code: str) -> str:
    """Cache key of one item mapping."""
    return f"v1:mapping:{fixmedins_code}:{own_code}"


class CatalogueReads:
    """Cached reads of institutions, versions, items and mappings (cache optional)."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache: Cache, *, enabled: bool = True
    ) -> None:
        self._sessions = sessions
        self.cache = cache
        self._enabled = enabled

    async def institution(self, code: str) -> catalogue_pb2.Institution | None:
        """One institution (None when unknown)."""
        key = institution_key(code)
        if self._enabled:
            found = await self.cache.get_many([key])
            if key in found:
                return catalogue_pb2.Institution.FromString(found[key]) if found[key] else None
        async with self._sessions() as session:
            row = (await CatalogueRepository(session).institutions([code])).get(code)
        message = institution_to_proto(row) if row else None
        if self._enabled:
            value = message.SerializeToString() if message else _ABSENT
            await self.cache.set_many({key: value}, INSTITUTION_TTL_S)
        return message

    async def current_version(self, prov_admdvs: str) -> int:
        """The province's current catalogue version (0 when none)."""
        key = version_key(prov_admdvs)
        if self._enabled:
            found = await self.cache.get_many([key], local=False)
            if key in found:
                return int(found[key])
        async with self._sessions() as session:
            version = await CatalogueRepository(session).current_version(prov_admdvs)
        if self._enabled and version:
            await self.cache.set_many({key: str(version).encode()}, VERSION_TTL_S, local=False)
        return version

    async def publish_version(self, prov_admdvs: str, version: int) -> None:
        """Announce a newly committed version to every replica."""
        await self.cache.set_many(
            {version_key(prov_admdvs): str(version).encode()}, VERSION_TTL_S, local=False
        )

    async def items(
        self, prov_admdvs: str, version: int, codes: Sequence[str]
    ) -> dict[str, StoredItem]:
        """The items among codes in a version (codes not in it are absent)."""
        unique = list(dict.fromkeys(code for code in codes if code))
        found: dict[str, StoredItem] = {}
        missing = unique
        if self._enabled:
            keys = {code: item_key(prov_admdvs, version, code) for code in unique}
            cached = await self.cache.get_many(list(keys.values()))
            missing = []
            for code, key in keys.items():
                if key not in cached:
                    missing.append(code)
                elif cached[key]:
                    found[code] = _item_from_bytes(cached[key])
        if missing:
            async with self._sessions() as session:
                loaded = await CatalogueRepository(session).items_at(prov_admdvs, version, missing)
            found.update(loaded)
            if self._enabled:
                await self.cache.set_many(
                    {
                        item_key(prov_admdvs, version, code): (
                            _item_to_bytes(loaded[code]) if code in loaded else _ABSENT
                        )
                        for code in missing
                    },
                    ITEM_TTL_S,
                )
        return found

    async def mappings(self, fixmedins_code: str, own_codes: Sequence[str]) -> dict[str, str]:
        """The institution's own codes -> national codes, among own_codes."""
        unique = list(dict.fromkeys(code for code in own_codes if code))
        found: dict[str, str] = {}
        missing = unique
        if self._enabled:
            keys = {code: mapping_key(fixmedins_code, code) for code in unique}
            cached = await self.cache.get_many(list(keys.values()))
            missing = [code for code, key in keys.items() if key not in cached]
            found = {code: cached[key].decode() for code, key in keys.items() if cached.get(key)}
        if missing:
            async with self._sessions() as session:
                loaded = await CatalogueRepository(session).mappings(fixmedins_code, missing)
            found.update(loaded)
            if self._enabled:
                await self.cache.set_many(
                    {
                        mapping_key(fixmedins_code, code): loaded.get(code, "").encode()
                        for code in missing
                    },
                    MAPPING_TTL_S,
                )
        return found

    async def forget(self, keys: Sequence[str]) -> None:
        """Drop keys whose values changed (institutions, mappings)."""
        await self.cache.delete(list(keys))


def _item_to_bytes(item: StoredItem) -> bytes:
    return stored_to_proto("", item).SerializeToString()


def _item_from_bytes(value: bytes) -> StoredItem:
    return stored_from_proto(catalogue_pb2.CatalogueItem.FromString(value))
