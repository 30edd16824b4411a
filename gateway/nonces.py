"""The x-tif-nonce values each paasid has used, kept for twice the timestamp window.

With Redis, a nonce is one SET NX with that expiry and the gateway's database is not written
(the insert was an eighth of the gateway's time on a message). Without Redis (the embedded
default), or while Redis does not answer, the nonce is a row of the gateway's database, pruned by
`forget_old`. A nonce spent in one store is not seen by the other, so across a Redis outage a
replay inside the window is caught by the msgid (its stored answer) rather than by the nonce.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.repository import GatewayRepository
from services.common.cache import Cache


class Nonces:
    """Spends nonces once per paasid, in Redis or the database."""

    def __init__(
        self, cache: Cache, autocommit: async_sessionmaker[AsyncSession], keep_s: float
    ) -> None:
        self._cache = cache
        self._autocommit = autocommit
        self._keep_s = keep_s

    @staticmethod
    def _key(paasid: str, nonce: str) -> str:
        return f"nonce:{paasid}:{nonce}"

    async def spend(self, paasid: str, nonce: str, now: dt.datetime) -> bool:
        """Record the nonce; False when this paasid used it before."""
        spent = await self._cache.add_once(self._key(paasid, nonce), self._keep_s)
        if spent is not None:
            return spent
        async with self._autocommit.begin() as session:
            return await GatewayRepository(session).use_nonce(paasid, nonce, now)

    async def give_back(self, paasid: str, nonce: str) -> None:
        """Forget a nonce whose message the platform failed to take in, so that the very same
        request may be sent again."""
        await self._cache.delete([self._key(paasid, nonce)])
        async with self._autocommit.begin() as session:
            await GatewayRepository(session).forget_nonce(paasid, nonce)

    async def forget_old(self, before: dt.datetime) -> int:
        """Drop database nonces older than `before` (Redis expires its own)."""
        async with self._autocommit.begin() as session:
            return await GatewayRepository(session).forget_nonces(before)
