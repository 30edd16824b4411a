"""Which filings are live and which have ended, as filing's change stream reports them.

Settlement follows filing's change stream of every area (WatchFilings, with heartbeats) into its
own database: each filing created, while it is live (followed_filings), and each filing that
ends (filing_ends). An admission then finds the person's filing in that copy instead of asking
filing (one call fewer per visit, docs/performance.md, eleventh round), and a settlement keeps
using the visit's admission filing unless it has since ended (one call fewer per settlement,
eighth round).

Both happen only while the stream is current: its last heartbeat, which says every change logged
before it has been sent and recorded, is at most `filing_ends_current_s` old. Otherwise (filing
down, the stream catching up after a restart) admissions and settlements ask filing, as they did
before; so does an admission whose person has no covering filing in the copy (one made a moment
ago, or none). A revocation therefore reaches admissions and settlements within about a second,
or at once with one filing replica; with filing asked, a revocation could also land between its
answer and the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import caller_metadata
from services.common.categories import category_name
from services.common.values import date_from_proto, optional_date
from services.settlement.repository import SettlementRepository

log = logging.getLogger(__name__)
EVERY_AREA = "000000"  # WatchFilingsRequest.dest_admdvs for every area (filing_service.proto)
_ENDS = frozenset({filing_pb2.FILING_CHANGE_TYPE_REVOKED, filing_pb2.FILING_CHANGE_TYPE_SUPERSEDED})
_BATCH = 500
"""Changes read between two records while catching up (a heartbeat records what it has)."""


class FilingEnds:
    """Follows filing's change stream into this service's database (live and ended filings);
    says whether it is current."""

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
        created: dict[str, filing_pb2.Filing] = {}
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
                elif change.change_type == filing_pb2.FILING_CHANGE_TYPE_CREATED:
                    created[change.filing.filing_id] = change.filing
                if unrecorded < _BATCH:
                    continue
            if unrecorded:
                await self._record(created, ended, change.cursor)
                created, ended, unrecorded = {}, {}, 0
            if heartbeat:
                self._heartbeat_at = self._clock()

    async def _record(
        self, created: dict[str, filing_pb2.Filing], ended: dict[str, int], cursor: int
    ) -> None:
        # A filing created and ended within one batch is only recorded as ended.
        live = [
            _followed(filing)
            for filing_id, filing in created.items()
            if filing_id not in ended and filing.status == filing_pb2.FILING_STATUS_ACTIVE
        ]
        async with self._sessions.begin() as session:
            await SettlementRepository(session).record_filing_changes(live, ended, cursor)


def _followed(filing: filing_pb2.Filing) -> dict[str, Any]:
    """A reported filing as FollowedFilingRow values."""
    return {
        "filing_id": filing.filing_id,
        "psn_no": filing.psn_no,
        "category": category_name(filing.category),
        "dest_admdvs": filing.dest_admdvs,
        "begin_date": date_from_proto(filing.begin_date, "begin_date"),
        "end_date": optional_date(filing, "end_date"),
    }
