"""The gateway's own storage, on SQLite and PostgreSQL (and Redis for nonces): nonces, sign-ins,
message claims, credentials."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
import simplejson
from sqlalchemy import func, select, update

from gateway.config import UPSTREAMS, GatewaySettings
from gateway.his_client import His
from gateway.hospital import REMEMBERED_S, HospitalInterface
from gateway.models import (
    DONE,
    MIGRATIONS_DIR,
    PENDING,
    Base,
    CredentialRow,
    MessageRow,
    NonceRow,
    SessionRow,
)
from gateway.nonces import Nonces
from gateway.repository import GatewayRepository, MessageLog
from gateway.upstreams import Upstreams
from services.common.db import autocommit_engine
from services.common.runtime import Storage, open_storage
from services.common.tracing import make_tracer_provider
from tests.conftest import REDIS_URL

T0 = 1_764_000_000.0


@pytest.fixture
async def storage(database_url: str, tmp_path: Path) -> AsyncIterator[Storage]:
    settings = GatewaySettings(database_url=database_url, data_dir=tmp_path)
    # As the gateway opens it: on PostgreSQL the message log runs on asyncpg directly.
    opened = await open_storage(
        settings, Base.metadata, MIGRATIONS_DIR, driver_pool_size=settings.message_pool_size
    )
    yield opened
    await opened.close()


async def _storage_with_redis(
    database_url: str, tmp_path: Path, redis_url: str, prefix: str
) -> Storage:
    settings = GatewaySettings(
        database_url=database_url, data_dir=tmp_path, redis_url=redis_url, redis_prefix=prefix
    )
    return await open_storage(
        settings, Base.metadata, MIGRATIONS_DIR, driver_pool_size=settings.message_pool_size
    )


async def _nonce_rows(storage: Storage) -> int:
    async with storage.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(NonceRow)) or 0)


def message(request_hash: str) -> MessageRow:
    return MessageRow(
        fixmedins_code="H11010000001",
        msgid="H11010000001202611241030150001",
        infno="2304",
        state=PENDING,
        request_hash=request_hash,
        request_body=b"{}",
        response=None,
        reference="",
        reversed_by="",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        inf_refmsgid="",
        created_at=dt.datetime.fromtimestamp(T0, dt.UTC),
    )


async def test_a_nonce_is_accepted_once_and_forgotten_after_two_windows(storage: Storage) -> None:
    now = [T0]
    nowhere = dict.fromkeys(UPSTREAMS, "127.0.0.1:1")
    upstreams = Upstreams(nowhere, make_tracer_provider("test").get_tracer("test"), 1.0)
    settings = GatewaySettings()
    hospital = HospitalInterface(settings, storage, upstreams, clock=lambda: now[0])
    moment = dt.datetime.fromtimestamp(T0, dt.UTC)
    async with storage.sessions.begin() as session:
        repository = GatewayRepository(session)
        assert await repository.use_nonce("paas", "nonce-0001", moment)
        assert not await repository.use_nonce("paas", "nonce-0001", moment)
        assert await repository.use_nonce("other", "nonce-0001", moment)
    now[0] = T0 + 600
    assert await hospital.forget_old_nonces() == 0
    now[0] = T0 + 601
    assert await hospital.forget_old_nonces() == 2
    await upstreams.close()


async def test_the_first_claim_of_a_msgid_wins_and_is_finished_once(storage: Storage) -> None:
    # asyncpg directly on PostgreSQL, SQLAlchemy on SQLite: the same answers either way.
    assert (storage.driver is None) == (storage.engine.dialect.name == "sqlite")
    messages = MessageLog(autocommit_engine(storage.engine), storage.driver)
    first = await messages.claim(message("a" * 64))
    second = await messages.claim(message("b" * 64))
    assert (first.request_hash, second.request_hash) == ("a" * 64, "a" * 64)
    assert (second.state, second.request_body, second.trace_id) == (
        PENDING,
        first.request_body,
        first.trace_id,
    )
    answered = "110000202611241030150123456789"
    assert await messages.finish(first.fixmedins_code, first.msgid, b"answer", "S1", answered)
    assert not await messages.finish(
        first.fixmedins_code, first.msgid, b"other", "S2", "110000202611241030169999999999"
    )
    async with storage.sessions() as session:
        stored = await GatewayRepository(session).message(first.fixmedins_code, first.msgid)
    assert stored is not None
    assert (stored.state, stored.response, stored.reference) == (DONE, b"answer", "S1")
    assert stored.inf_refmsgid == answered


async def test_a_message_is_found_by_the_inf_refmsgid_of_its_answer_or_by_its_msgid(
    storage: Storage,
) -> None:
    messages = MessageLog(autocommit_engine(storage.engine), storage.driver)
    row = await messages.claim(message("a" * 64))
    answered = "110000202611241030150123456789"
    await messages.finish(row.fixmedins_code, row.msgid, b"answer", "S1", answered)
    async with storage.sessions() as session:
        repository = GatewayRepository(session)
        by_answer = await repository.find_message(answered)
        by_msgid = await repository.find_message("H11010000001202611241030150001")
        unknown = await repository.find_message("110000202611241030150000000000")
    assert by_answer is not None and by_msgid is not None
    assert by_answer.msgid == by_msgid.msgid == "H11010000001202611241030150001"
    assert by_answer.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert unknown is None


async def test_reissued_credentials_replace_the_old_ones(storage: Storage) -> None:
    issued = dt.datetime.fromtimestamp(T0, dt.UTC)
    for paasid in ("old-paasid", "new-paasid"):
        async with storage.sessions.begin() as session:
            await GatewayRepository(session).replace_credential(
                CredentialRow(
                    fixmedins_code="H11010000001", paasid=paasid, secret="s", issued_at=issued
                )
            )
    async with storage.sessions() as session:
        repository = GatewayRepository(session)
        assert await repository.credential_by_paasid("old-paasid") is None
        found = await repository.credential_by_paasid("new-paasid")
    assert found is not None and found.fixmedins_code == "H11010000001"


async def test_with_redis_a_nonce_is_spent_once_and_writes_no_database_row(
    database_url: str, tmp_path: Path, redis_client: redis_asyncio.Redis, redis_prefix: str
) -> None:
    storage = await _storage_with_redis(database_url, tmp_path, REDIS_URL, redis_prefix)
    nonces = Nonces(storage.cache, storage.autocommit, keep_s=600)
    moment = dt.datetime.fromtimestamp(T0, dt.UTC)
    try:
        assert await nonces.spend("paas", "nonce-0001", moment)
        assert not await nonces.spend("paas", "nonce-0001", moment)
        assert await nonces.spend("other", "nonce-0001", moment)
        ttl_ms = await redis_client.pttl(f"{redis_prefix}:gateway:nonce:paas:nonce-0001")
        assert 590_000 < ttl_ms <= 600_000
        assert await _nonce_rows(storage) == 0
        await nonces.give_back("paas", "nonce-0001")
        assert await nonces.spend("paas", "nonce-0001", moment)
    finally:
        await storage.close()


async def test_while_redis_does_not_answer_nonces_are_kept_in_the_database(
    database_url: str, tmp_path: Path
) -> None:
    # Nothing listens on port 1.
    storage = await _storage_with_redis(database_url, tmp_path, "redis://127.0.0.1:1/0", "down")
    nonces = Nonces(storage.cache, storage.autocommit, keep_s=600)
    moment = dt.datetime.fromtimestamp(T0, dt.UTC)
    try:
        assert await nonces.spend("paas", "nonce-0001", moment)
        assert not await nonces.spend("paas", "nonce-0001", moment)
        assert await _nonce_rows(storage) == 1
        await nonces.give_back("paas", "nonce-0001")
        assert await _nonce_rows(storage) == 0
    finally:
        await storage.close()


class _Hospital:
    """A HospitalInterface on `storage` with a signed-in institution; its services are
    unreachable, so a message that passes every gateway check is refused as not answered."""

    def __init__(self, storage: Storage) -> None:
        nowhere = dict.fromkeys(UPSTREAMS, "127.0.0.1:1")
        self.upstreams = Upstreams(nowhere, make_tracer_provider("test").get_tracer("test"), 1.0)
        self.interface = HospitalInterface(GatewaySettings(), storage, self.upstreams)
        self.his = His(httpx.AsyncClient(), "H11010000001", "paas-1", "secret-1")
        self.his.sign_no = "S-1"
        self._storage = storage

    async def sign_in(self) -> None:
        now = dt.datetime.now(dt.UTC)
        async with self._storage.sessions.begin() as session:
            repository = GatewayRepository(session)
            await repository.replace_credential(
                CredentialRow(
                    fixmedins_code="H11010000001", paasid="paas-1", secret="secret-1", issued_at=now
                )
            )
            repository.add_session(
                SessionRow(
                    sign_no="S-1",
                    fixmedins_code="H11010000001",
                    opter_no="0001",
                    signed_in_at=now,
                    expires_at=now + dt.timedelta(hours=1),
                    signed_out_at=None,
                )
            )

    async def send(self, body: bytes, headers: dict[str, str]) -> str:
        answer: dict[str, Any] = simplejson.loads(await self.interface.handle(headers, body))
        assert answer["infcode"] == -1
        message: str = answer["err_msg"]
        return message

    def person_query(self) -> bytes:
        payload = {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": "110101195001011234"}}
        return bytes(simplejson.dumps(self.his.envelope("1101", payload)).encode())

    async def close(self) -> None:
        await self.upstreams.close()
        await self.his.client.aclose()


async def test_a_sign_out_through_another_gateway_takes_effect_within_five_seconds(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    hospital = _Hospital(storage)
    await hospital.sign_in()
    unanswered = "identity did not answer"
    try:
        assert unanswered in await hospital.send(hospital.person_query(), hospital.his.headers())
        async with storage.sessions.begin() as session:
            await session.execute(
                update(SessionRow)
                .where(SessionRow.sign_no == "S-1")
                .values(signed_out_at=dt.datetime.now(dt.UTC))
            )
        # This process still trusts what it read a moment ago...
        assert unanswered in await hospital.send(hospital.person_query(), hospital.his.headers())
        later = time.monotonic() + REMEMBERED_S + 0.1
        monkeypatch.setattr(time, "monotonic", lambda: later)
        # ...and no longer once REMEMBERED_S have passed.
        assert await hospital.send(hospital.person_query(), hospital.his.headers()) == (
            "sign_no S-1 was signed out; sign in with 9001"
        )
    finally:
        await hospital.close()


async def test_a_message_the_platform_failed_to_record_may_be_sent_again_as_it_was(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    hospital = _Hospital(storage)
    await hospital.sign_in()
    body, headers = hospital.person_query(), hospital.his.headers()
    claim = MessageLog.claim

    async def failing_claim(self: MessageLog, row: MessageRow) -> MessageRow:
        raise ConnectionResetError("the database went away")

    try:
        monkeypatch.setattr(MessageLog, "claim", failing_claim)
        assert (await hospital.send(body, headers)).startswith("the platform failed")
        monkeypatch.setattr(MessageLog, "claim", claim)
        # The same bytes with the same nonce: taken in, not refused as a replay.
        assert "identity did not answer" in await hospital.send(body, headers)
        assert (await hospital.send(body, headers)).startswith("x-tif-nonce")
    finally:
        await hospital.close()
