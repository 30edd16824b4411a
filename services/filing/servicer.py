"""FilingService over gRPC: proto <-> domain, one transaction per call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import Caller, caller_from_metadata
from services.common.errors import InvalidArgument
from services.common.fingerprint import request_fingerprint
from services.common.paging import decode_page_token, encode_page_token, page_size
from services.common.uploads import complete_upload
from services.common.values import (
    SHANGHAI,
    date_from_proto,
    date_to_proto,
    optional_date,
    timestamp,
    today_in_china,
)
from services.filing import logic
from services.filing.errors import (
    FilingInvalid,
    FilingNotActive,
    FilingNotFound,
    FilingRequired,
    RequestIdConflict,
)
from services.filing.logic import Category, ChangeType, FilingRecord, NewFiling, Status
from services.filing.repository import FilingRepository

Context = grpc.aio.ServicerContext[Any, Any]
_WATCH_BATCH = 500
_WATCH_POLL_S = 1.0  # a change committed by another replica is seen within this time
_ATTEMPTS = 3


def filing_to_proto(filing: FilingRecord) -> filing_pb2.Filing:
    """The wire form of a filing."""
    message = filing_pb2.Filing(
        filing_id=filing.filing_id,
        psn_no=filing.psn_no,
        category=int(filing.category),  # type: ignore[arg-type]
        insuplc_admdvs=filing.insuplc_admdvs,
        dest_admdvs=filing.dest_admdvs,
        begin_date=date_to_proto(filing.begin_date),
        status=int(filing.status),  # type: ignore[arg-type]
        channel=filing.channel,  # type: ignore[arg-type]
        create_time=timestamp(filing.created_at),
        superseded_by=filing.superseded_by,
    )
    if filing.end_date is not None:
        message.end_date.CopyFrom(date_to_proto(filing.end_date))
    if filing.ended_at is not None:
        message.end_time.CopyFrom(timestamp(filing.ended_at))
    return message


def _new_filing(request: filing_service_pb2.CreateFilingRequest, today: dt.date) -> NewFiling:
    try:
        category = Category(request.category)
    except ValueError:
        raise FilingInvalid("category is missing or unknown", field="category") from None
    if request.channel not in filing_pb2.FilingChannel.values() or not request.channel:
        raise FilingInvalid("channel is missing or unknown", field="channel")
    return NewFiling(
        psn_no=request.psn_no,
        category=category,
        insuplc_admdvs=request.insuplc_admdvs,
        dest_admdvs=request.dest_admdvs,
        begin_date=optional_date(request, "begin_date") or today,
        end_date=optional_date(request, "end_date"),
        channel=request.channel,
    )


def _filing_id(now: dt.datetime, serial: int) -> str:
    # Unique because serial comes from the locked sequence; sorts in creation order.
    return f"F{now.astimezone(SHANGHAI):%Y%m%d}{serial:012d}"


class ChangeNotifier:
    """Wakes this process's watchers when it commits a filing change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """The event the next notify() sets."""
        return self._event

    def notify(self) -> None:
        """Wake everyone waiting on the current event."""
        self._event.set()
        self._event = asyncio.Event()


class _Batch:
    """The writes of one transaction, collected so they go to the database in bulk."""

    def __init__(self, last_cursor: int) -> None:
        self.now = dt.datetime.now(dt.UTC)
        self.by_request: dict[str, tuple[FilingRecord, str]] = {}
        self.active: dict[str, FilingRecord] = {}
        self._start = self.cursor = last_cursor
        self._new: dict[str, tuple[FilingRecord, str, str]] = {}
        self._ended: list[FilingRecord] = []
        self._changes: list[tuple[int, str, int, bytes]] = []

    def reserve_cursor(self) -> int:
        """The next number of the sequence (change-log cursors and filing ids share it)."""
        self.cursor += 1
        return self.cursor

    def _log(self, filing: FilingRecord, change: ChangeType) -> None:
        snapshot = filing_to_proto(filing).SerializeToString()
        self._changes.append((self.reserve_cursor(), filing.dest_admdvs, int(change), snapshot))

    def add(self, filing: FilingRecord, request_id: str, request_hash: str) -> None:
        """A new active filing."""
        if filing.filing_id in self._new:
            raise AssertionError(f"filing id {filing.filing_id} allocated twice")
        self._new[filing.filing_id] = (filing, request_id, request_hash)
        self.by_request[request_id] = (filing, request_hash)
        self.active[filing.psn_no] = filing
        self._log(filing, ChangeType.CREATED)

    def end(self, filing: FilingRecord, status: Status, superseded_by: str = "") -> FilingRecord:
        """Revoke or supersede a filing (stored or created earlier in this batch)."""
        ended = dataclasses.replace(
            filing, status=status, ended_at=self.now, superseded_by=superseded_by
        )
        if filing.filing_id in self._new:
            _, request_id, request_hash = self._new[filing.filing_id]
            self._new[filing.filing_id] = (ended, request_id, request_hash)
        else:
            self._ended.append(ended)
        self.active.pop(filing.psn_no, None)
        self._log(ended, ChangeType.SUPERSEDED if superseded_by else ChangeType.REVOKED)
        return ended

    async def flush(self, repository: FilingRepository) -> None:
        """Write everything collected (the caller's transaction commits it)."""
        for ended in self._ended:
            await repository.end(ended.filing_id, ended.status, self.now, ended.superseded_by)
        await repository.insert_many(list(self._new.values()))
        await repository.add_changes(self._changes)
        if self.cursor != self._start:
            await repository.set_sequence(self.cursor)


class FilingServicer(filing_service_pb2_grpc.FilingServiceServicer):
    """Implements medsettle.filing.v1.FilingService."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        lock_months: Callable[[str], int],
        reads: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions  # the read-only lookups (services.common.db)
        self._lock_months = lock_months
        self._notifier = ChangeNotifier()

    async def _create(
        self,
        batch: _Batch,
        caller: Caller,
        request: filing_service_pb2.CreateFilingRequest,
    ) -> tuple[FilingRecord, bool]:
        """Create one filing inside a batch: (filing, created?)."""
        if len(request.request_id) > 64:
            raise InvalidArgument("request_id has at most 64 characters")
        today = today_in_china()
        new = _new_filing(request, today)
        caller.require_owns(new.insuplc_admdvs, "filing")
        request_hash = request_fingerprint(request)
        earlier = batch.by_request.get(request.request_id) if request.request_id else None
        if earlier is not None:
            if earlier[1] != request_hash:
                raise RequestIdConflict(
                    f"request_id {request.request_id} was used for a different filing",
                    requestId=request.request_id,
                )
            return earlier[0], False
        end_date = logic.validate(new, today)
        now = batch.now
        filing = FilingRecord(
            filing_id=_filing_id(now, batch.reserve_cursor()),
            psn_no=new.psn_no,
            category=new.category,
            insuplc_admdvs=new.insuplc_admdvs,
            dest_admdvs=new.dest_admdvs,
            begin_date=new.begin_date,
            end_date=end_date,
            status=Status.ACTIVE,
            channel=new.channel,
            created_at=now,
        )
        current = batch.active.get(new.psn_no)
        if current is not None:
            self._check_changeable(current, today)
            batch.end(current, Status.SUPERSEDED, filing.filing_id)
        request_id = request.request_id or f"auto:{uuid.uuid4().hex}"
        batch.add(filing, request_id, request_hash)
        return filing, True

    def _check_changeable(self, filing: FilingRecord, today: dt.date) -> None:
        created_on = filing.created_at.astimezone(SHANGHAI).date()
        logic.check_changeable(filing, self._lock_months(filing.insuplc_admdvs), created_on, today)

    async def _write(
        self, caller: Caller, requests: list[filing_service_pb2.CreateFilingRequest]
    ) -> list[tuple[FilingRecord, bool]]:
        """Create filings in one transaction, retrying when a concurrent writer collided."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._sessions.begin() as session:
                    repository = FilingRepository(session)
                    cursor = await repository.lock_sequence()
                    batch = await self._batch(repository, cursor, requests)
                    results = [await self._create(batch, caller, r) for r in requests]
                    await batch.flush(repository)
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            self._notifier.notify()
            return results
        raise AssertionError("unreachable")

    @staticmethod
    async def _batch(
        repository: FilingRepository,
        last_cursor: int,
        requests: list[filing_service_pb2.CreateFilingRequest],
    ) -> _Batch:
        """A batch that knows the requests' earlier filings and the persons' active ones."""
        batch = _Batch(last_cursor)
        batch.by_request = await repository.by_request_ids(
            [request.request_id for request in requests if request.request_id]
        )
        batch.active = await repository.active_for_each(
            list({request.psn_no for request in requests})
        )
        return batch

    async def CreateFiling(
        self, request: filing_service_pb2.CreateFilingRequest, context: Context
    ) -> filing_pb2.Filing:
        caller = caller_from_metadata(context.invocation_metadata())
        [(filing, _)] = await self._write(caller, [request])
        return filing_to_proto(filing)

    async def ImportFilings(
        self,
        request_iterator: AsyncIterator[filing_service_pb2.ImportFilingsRequest],
        context: Context,
    ) -> filing_service_pb2.ImportFilingsResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        created = unchanged = 0
        # One transaction for the whole import, written a message at a time so memory stays at
        # one message; a failed or cancelled import rolls back entirely. The sequence lock is
        # held throughout, so online filing writes wait for the import.
        async with self._sessions.begin() as session:
            repository = FilingRepository(session)
            cursor = await repository.lock_sequence()
            tables = repository.growing_tables()
            async for message in complete_upload(request_iterator):
                if len(message.filings) > 1000:
                    raise InvalidArgument("at most 1,000 filings per message")
                requests = list(message.filings)
                batch = await self._batch(repository, cursor, requests)
                for request in requests:
                    _, was_created = await self._create(batch, caller, request)
                    created += was_created
                    unchanged += not was_created
                await batch.flush(repository)
                await tables.grew(len(requests))
                cursor = batch.cursor
        self._notifier.notify()
        return filing_service_pb2.ImportFilingsResponse(
            created_count=created, unchanged_count=unchanged
        )

    async def GetFiling(
        self, request: filing_service_pb2.GetFilingRequest, context: Context
    ) -> filing_pb2.Filing:
        async with self._reads() as session:
            filing = await FilingRepository(session).get(request.filing_id)
        if filing is None:
            raise FilingNotFound(f"no filing {request.filing_id}", filingId=request.filing_id)
        return filing_to_proto(filing)

    async def ListFilings(
        self, request: filing_service_pb2.ListFilingsRequest, context: Context
    ) -> filing_service_pb2.ListFilingsResponse:
        if bool(request.psn_no) == bool(request.dest_admdvs):
            raise InvalidArgument("set exactly one of psn_no and dest_admdvs")
        size = page_size(request.page_size, 100, 1000)
        dest_prefix = ""
        if request.dest_admdvs:
            area = request.dest_admdvs
            dest_prefix = (
                area[:2] if area.endswith("0000") else area[:4] if area.endswith("00") else area
            )
        async with self._sessions() as session:
            filings = await FilingRepository(session).page(
                psn_no=request.psn_no,
                dest_prefix=dest_prefix,
                before_id=decode_page_token(request.page_token),
                limit=size + 1,
            )
        more = len(filings) > size
        filings = filings[:size]
        return filing_service_pb2.ListFilingsResponse(
            filings=[filing_to_proto(filing) for filing in filings],
            next_page_token=encode_page_token(filings[-1].filing_id) if more else "",
        )

    async def RevokeFiling(
        self, request: filing_service_pb2.RevokeFilingRequest, context: Context
    ) -> filing_pb2.Filing:
        caller = caller_from_metadata(context.invocation_metadata())
        if len(request.reason) > 200:
            raise InvalidArgument("reason has at most 200 characters")
        async with self._sessions.begin() as session:
            repository = FilingRepository(session)
            cursor = await repository.lock_sequence()
            filing = await repository.get(request.filing_id)
            if filing is None:
                raise FilingNotFound(f"no filing {request.filing_id}", filingId=request.filing_id)
            caller.require_owns(filing.insuplc_admdvs, "revoke filing")
            if filing.status is not Status.ACTIVE:
                raise FilingNotActive(
                    f"filing {filing.filing_id} is not active", filingId=filing.filing_id
                )
            self._check_changeable(filing, today_in_china())
            batch = _Batch(cursor)
            revoked = batch.end(filing, Status.REVOKED)
            await batch.flush(repository)
        self._notifier.notify()
        return filing_to_proto(revoked)

    async def FindEffectiveFiling(
        self, request: filing_service_pb2.FindEffectiveFilingRequest, context: Context
    ) -> filing_pb2.Filing:
        day = date_from_proto(request.date, "date")
        async with self._reads() as session:
            filing = await FilingRepository(session).active_for(request.psn_no)
        if filing is None or not logic.is_effective(filing, request.treatment_admdvs, day):
            raise FilingRequired(
                f"person {request.psn_no} has no filing covering {request.treatment_admdvs} "
                f"on {day.isoformat()}: file first, or settle as an emergency",
                psnNo=request.psn_no,
                treatmentAdmdvs=request.treatment_admdvs,
                date=day.isoformat(),
            )
        return filing_to_proto(filing)

    async def WatchFilings(
        self, request: filing_service_pb2.WatchFilingsRequest, context: Context
    ) -> AsyncIterator[filing_pb2.FilingChange]:
        area = request.dest_admdvs
        if len(area) != 6 or not area.isdigit():
            raise InvalidArgument("dest_admdvs must be a six-digit area code (000000: all)")
        province = None if area == logic.EVERY_AREA else area[:2]
        cursor = request.after_cursor
        while True:
            woken = self._notifier.current()
            async with self._sessions() as session:
                changes = await FilingRepository(session).changes_after(
                    province, cursor, _WATCH_BATCH
                )
            for change_cursor, dest, change_type, snapshot in changes:
                cursor = change_cursor
                if logic.watch_matches(area, dest):
                    yield filing_pb2.FilingChange(
                        cursor=change_cursor,
                        change_type=change_type,  # type: ignore[arg-type]
                        filing=filing_pb2.Filing.FromString(snapshot),
                    )
            if len(changes) < _WATCH_BATCH:
                if request.heartbeats:  # read to the end: everything logged so far was sent
                    yield filing_pb2.FilingChange(cursor=cursor)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), _WATCH_POLL_S)
