"""Which filings have ended since admission, as filing's change stream reports them.

A settlement needs the filing that covers the visit's admission date now. Admission found one
and the visit keeps it (id and category); it stays the answer unless it has since been revoked
or superseded. Settlement follows filing's change stream of every area (WatchFilings, with
heartbeats) and records each filing that ends, so a settlement can use the visit's filing
without asking filing again: one call fewer per settlement (docs/performance.md, eighth round).

It does so only while the stream is current: its last heartbeat, which says every change logged
before it has been sent and recorded, is at most `filing_ends_current_s` old. Otherwise (filing
down, the stream catching up after a restart) settlements ask filing, as they did before. A
revocation therefore reaches settlements within about a second, or at once with one filing
replica; before this, a revocation could also land between filing's answer and the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import caller_metadata
from services.settlement.repository import SettlementRepository

log = logging.getLogger(__name__)
EVERY_AREA = "000000"  # WatchFilingsRequest.dest_admdvs for every area (filing_service.proto)
_ENDS = frozenset({filing_pb2.FILING_CHANGE_TYPE_REVOKED, filing_pb2.FILING_CHANGE_TYPE_SUPERSEDED})
_BATCH = 500
"""Changes read between two records while catching up (a heartbeat records what it has)."""


class FilingEnds:
    """Follows filing's change stream into this service's database; says whether it is current."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channel: grpc.aio.Channel,
        *,
        current_s: float,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._filing = filing_service_pb2_grpc.FilingServiceStub(channel)
        self._current_s = current_s
        self._max_backoff_s = max_backoff_s
        self._clock = clock
        self._heartbeat_at: float | None = None

    @property
    def current(self) -> bool:
        """Whether every change filing logged until a moment ago is recorded."""
        beat = self._heartbeat_at
        return beat is not None and self._clock() - beat <= self._current_s

    async def run(self) -> None:
        """Follow the stream until cancelled; resume after each call ends or fails."""
        backoff = 0.2
        while True:
            try:
                await self._follow()
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                    backoff = 0.2  # each call ends at its deadline; the next resumes at once
                    continue
                self._heartbeat_at = None
                log.warning(
                    "following filing's changes failed (%s); settlements ask filing until it "
                    "is back",
                    error.code().name,
                )
            except Exception:
                self._heartbeat_at = None
                log.exception("following filing's changes failed; settlements ask filing")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _follow(self) -> None:
        async with self._sessions() as session:
            after = await SettlementRepository(session).filing_feed_cursor()
        request = filing_service_pb2.WatchFilingsRequest(
            dest_admdvs=EVERY_AREA, after_cursor=after, heartbeats=True
        )
        ended: dict[str, int] = {}
        unrecorded = 0
        async for change in self._filing.WatchFilings(
            request, metadata=caller_metadata("national")
        ):
            heartbeat = not change.HasField("filing")
            if not heartbeat:
                unrecorded += 1
                if change.change_type in _ENDS:
                    ended[change.filing.filing_id] = change.cursor
                if unrecorded < _BATCH:
                    continue
            if unrecorded:
                await self._record(ended, change.cursor)
                ended, unrecorded = {}, 0
            if heartbeat:
                self._heartbeat_at = self._clock()

    async def _record(self, ended: dict[str, int], cursor: int) -> None:
        async with self._sessions.begin() as session:
            await SettlementRepository(session).record_filing_ends(ended, cursor)
