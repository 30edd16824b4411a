"""The gateway's own database, on SQLite and PostgreSQL: nonces, message claims, credentials."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import UPSTREAMS, GatewaySettings
from gateway.hospital import HospitalInterface
from gateway.models import DONE, MIGRATIONS_DIR, PENDING, Base, CredentialRow, MessageRow
from gateway.repository import GatewayRepository
from gateway.upstreams import Upstreams
from services.common.runtime import Storage, open_storage
from services.common.tracing import make_tracer_provider

T0 = 1_764_000_000.0


@pytest.fixture
async def storage(database_url: str, tmp_path: Path) -> AsyncIterator[Storage]:
    settings = GatewaySettings(database_url=database_url, data_dir=tmp_path)
    opened = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    yield opened
    await opened.close()


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
    hospital = HospitalInterface(
        settings, storage.sessions, upstreams, storage.metrics, clock=lambda: now[0]
    )
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
    async with storage.sessions.begin() as session:
        first = await GatewayRepository(session).claim(message("a" * 64))
    async with storage.sessions.begin() as session:
        second = await GatewayRepository(session).claim(message("b" * 64))
    assert (first.request_hash, second.request_hash) == ("a" * 64, "a" * 64)
    async with storage.sessions.begin() as session:
        repository = GatewayRepository(session)
        answered = "110000202611241030150123456789"
        assert await repository.finish(first.fixmedins_code, first.msgid, b"answer", "S1", answered)
        assert not await repository.finish(
            first.fixmedins_code, first.msgid, b"other", "S2", "110000202611241030169999999999"
        )
        stored = await repository.message(first.fixmedins_code, first.msgid)
    assert stored is not None
    assert (stored.state, stored.response, stored.reference) == (DONE, b"answer", "S1")
    assert stored.inf_refmsgid == answered


async def test_a_message_is_found_by_the_inf_refmsgid_of_its_answer_or_by_its_msgid(
    storage: Storage,
) -> None:
    async with storage.sessions.begin() as session:
        repository = GatewayRepository(session)
        row = await repository.claim(message("a" * 64))
        answered = "110000202611241030150123456789"
        await repository.finish(row.fixmedins_code, row.msgid, b"answer", "S1", answered)
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
