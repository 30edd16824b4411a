"""The national hospital interface: one signed, signed-in, idempotent message at a time.

`HospitalInterface.handle` takes the HTTP headers and body and always returns the bytes of a
national response envelope: a refusal is `infcode -1` with an `err_msg` naming the cause, never an
HTTP error. The order of checks: size and JSON, signature and timestamp, envelope, the paasid's
institution, nonce, sign-in session, then the msgid (a repeat gets the stored bytes), then the
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2
from opentelemetry import trace

from gateway import codec
from gateway.auth import SignedHeaders, check_signature, signed_headers
from gateway.config import GatewaySettings
from gateway.envelope import Envelope, EnvelopeError, inf_refmsgid, parse_envelope, response
from gateway.models import DONE, PENDING, REVERSED, MessageRow, SessionRow
from gateway.nonces import Nonces
from gateway.persons import RecentPersons
from gateway.repository import GatewayRepository, MessageLog
from gateway.transactions.base import Call, Outcome
from gateway.transactions.registry import NOT_YET_AVAILABLE, REVERSIBLE, SERVICE_TRANSACTIONS
from gateway.transactions.settlements import cancel_settlement_by_id
from gateway.transactions.visits import cancel_visit_by_id
from gateway.upstreams import AS_GATEWAY, ServiceRefused, Upstreams, ask
from services.common.cache import LocalCache
from services.common.db import autocommit_engine
from services.common.runtime import Storage
from services.common.tracing import current_trace_id
from services.common.values import SHANGHAI, stored_utc

_LOGGER = logging.getLogger(__name__)
_REFMSGID = re.compile(rb'"inf_refmsgid":"([0-9]{30})"')
# The national front-end path every HIS adapter already calls.
HOSPITAL_PATH = "/fsi/api/rsfComIfsService/callService"
_SIGN_IN = "9001"
# How long a credential or a sign-in read from the database is trusted in memory.
REMEMBERED_S = 5.0
_NO_AREA = "000000"
T = TypeVar("T")


class _Answered(Exception):
    """The message already has its answer (a stored response, or a conflict)."""

    def __init__(self, body: bytes) -> None:
        super().__init__("answered")
        self.body = body


@dataclass(frozen=True)
class _SignIn:
    """What the sign-in check needs of a session (9001)."""

    fixmedins_code: str
    expires_at: dt.datetime
    signed_out: bool


@dataclass(frozen=True)
class _Received:
    envelope: Envelope
    request_hash: str
    canonical: bytes
    signed: SignedHeaders


def _area_of(body: Any) -> str:
    """The receiver area for inf_refmsgid: the hospital's province, when it can be read."""
    area = body.get("mdtrtarea_admvs") if isinstance(body, dict) else None
    if isinstance(area, str) and len(area) == 6 and area.isdigit():
        return area[:2] + "0000"
    return _NO_AREA


class HospitalInterface:
    """Authenticates, deduplicates and dispatches hospital messages."""

    def __init__(
        self,
        settings: GatewaySettings,
        storage: Storage,
        upstreams: Upstreams,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        metrics = storage.metrics
        self._requests = metrics.counter(
            "medsettle_hospital_requests",
            "Hospital messages answered, by infno and infcode",
            ["infno", "infcode"],
        )
        self._seconds = metrics.histogram(
            "medsettle_hospital_duration_seconds", "Time to answer a hospital message", ["infno"]
        )
        self._sessions = storage.sessions
        # One-statement writes and lookups: no BEGIN / COMMIT round trips on PostgreSQL.
        self._autocommit = storage.autocommit
        self._messages = MessageLog(autocommit_engine(storage.engine), storage.driver)
        self._nonces = Nonces(storage.cache, storage.autocommit, 2 * settings.timestamp_window_s)
        self._upstreams = upstreams
        self._persons = RecentPersons(
            upstreams.identity, settings.recent_person_s, settings.recent_persons
        )
        metrics.watch(
            "medsettle_recent_person_hit_ratio",
            "Settlements that named their person from memory, over all (gateway.persons)",
            lambda: self._persons.stats.hit_ratio,
        )
        self._clock = clock
        self._credentials: LocalCache[tuple[str, str]] = LocalCache(10_000)
        self._sign_ins: LocalCache[_SignIn] = LocalCache(100_000)
        self._own: dict[str, Callable[[Call], Awaitable[Outcome]]] = {
            _SIGN_IN: self._sign_in,
            "9002": self._sign_out,
            "2601": self._reverse,
        }

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _answer_envelope(
        self,
        area: str,
        received: dt.datetime,
        *,
        output: dict[str, Any] | None = None,
        err_msg: str = "",
    ) -> tuple[str, bytes]:
        """(inf_refmsgid, encoded response envelope) of one answer."""
        refmsgid = inf_refmsgid(area, received)
        body = codec.encode(
            response(refmsgid, received, self._now(), output=output, err_msg=err_msg)
        )
        return refmsgid, body

    def _refusal(self, area: str, received: dt.datetime, message: str) -> bytes:
        return self._answer_envelope(area, received, err_msg=message)[1]

    async def handle(self, headers: Mapping[str, str], body: bytes) -> bytes:
        """The response envelope for one request, counted per infno and infcode."""
        started = time.perf_counter()
        answer, infno = await self._answer(headers, body)
        # Every envelope this module writes starts with its infcode, then its inf_refmsgid.
        infcode = "0" if answer.startswith(b'{"infcode":0') else "-1"
        found = _REFMSGID.search(answer, 0, 64)
        refmsgid = found.group(1).decode() if found else ""
        span = trace.get_current_span()
        span.update_name(f"gateway/{infno}")
        span.set_attribute("medsettle.infno", infno)
        span.set_attribute("medsettle.infcode", infcode)
        span.set_attribute("medsettle.inf_refmsgid", refmsgid)
        # One line per answer, with the trace id, so that any inf_refmsgid a hospital quotes
        # (refusals included, which are not kept) leads to its trace.
        _LOGGER.info("answered infno=%s infcode=%s inf_refmsgid=%s", infno, infcode, refmsgid)
        self._requests.labels(infno, infcode).inc()
        self._seconds.labels(infno).observe(time.perf_counter() - started)
        return answer

    def _known_infno(self, parsed: Any) -> str:
        """The infno as a metrics label: a transaction of this platform, else "other"."""
        infno = parsed.get("infno") if isinstance(parsed, dict) else None
        # Any JSON value may arrive here; the envelope's own check refuses a non-string later.
        known = isinstance(infno, str) and (infno in self._own or infno in SERVICE_TRANSACTIONS)
        return str(infno) if known else "other"

    async def _answer(self, headers: Mapping[str, str], body: bytes) -> tuple[bytes, str]:
        received = self._now()
        area = _NO_AREA
        infno = "other"
        try:
            if len(body) > self._settings.max_body_bytes:
                raise EnvelopeError(
                    f"the request body is larger than {self._settings.max_body_bytes} bytes"
                )
            signed = signed_headers(headers)
            parsed = codec.decode(body)
            area, infno = _area_of(parsed), self._known_infno(parsed)
            message = await self._authenticate(signed, parsed)
            return await self._process(message, area, received), infno
        except _Answered as answered:
            return answered.body, infno
        except EnvelopeError as error:
            return self._refusal(area, received, str(error)), infno
        except Exception:  # a bug must still answer in the national form, without internals
            _LOGGER.exception("hospital message failed")
            failure = (
                "the platform failed to process the message; send the same msgid again, "
                "or reverse it with 2601"
            )
            return self._refusal(area, received, failure), infno

    async def _remembered(
        self,
        kept: LocalCache[T],
        key: str,
        read: Callable[[GatewayRepository, str], Awaitable[T | None]],
    ) -> T | None:
        """kept[key], else what `read` finds in the database, then kept for REMEMBERED_S. What
        is not found is not kept: it may be created any moment."""
        known = kept.get(key)
        if known is not None:
            return known
        async with self._autocommit() as session:
            found = await read(GatewayRepository(session), key)
        if found is not None:
            kept.set_many({key: found}, REMEMBERED_S)
        return found

    async def _authenticate(self, signed: SignedHeaders, parsed: Any) -> _Received:
        # Most messages need no database read for their credential (a re-issued secret
        # replaces the old one within REMEMBERED_S).
        credential = await self._remembered(self._credentials, signed.paasid, _credential_of)
        if credential is None:
            raise EnvelopeError(f"x-tif-paasid {signed.paasid} is not known")
        fixmedins_code, secret = credential
        check_signature(signed, secret, self._clock(), self._settings.timestamp_window_s)
        envelope = parse_envelope(parsed)
        if envelope.fixmedins_code != fixmedins_code:
            raise EnvelopeError(
                f"x-tif-paasid {signed.paasid} does not belong to fixmedins_code "
                f"{envelope.fixmedins_code}"
            )
        canonical = codec.encode(parsed, canonical=True)
        return _Received(envelope, hashlib.sha256(canonical).hexdigest(), canonical, signed)

    async def _require_session(self, envelope: Envelope) -> None:
        if envelope.infno == _SIGN_IN:
            return
        if not envelope.sign_no:
            raise EnvelopeError("sign_no is required: sign in with 9001 first")
        # A sign-out (9002) through this process forgets its sign-in at once; through another,
        # it takes effect within REMEMBERED_S.
        sign_in = await self._remembered(self._sign_ins, envelope.sign_no, _sign_in_of)
        if sign_in is None or sign_in.fixmedins_code != envelope.fixmedins_code:
            raise EnvelopeError(f"sign_no {envelope.sign_no} is not a sign-in of this institution")
        if sign_in.signed_out:
            raise EnvelopeError(f"sign_no {envelope.sign_no} was signed out; sign in with 9001")
        if sign_in.expires_at <= self._now():
            raise EnvelopeError(f"sign_no {envelope.sign_no} has expired; sign in with 9001")

    def _handler(self, infno: str) -> Callable[[Call], Awaitable[Outcome]]:
        if infno in NOT_YET_AVAILABLE:
            raise EnvelopeError(NOT_YET_AVAILABLE[infno])
        handler = self._own.get(infno) or SERVICE_TRANSACTIONS.get(infno)
        if handler is None:
            raise EnvelopeError(f"infno {infno} is not a transaction of this platform")
        return handler

    async def _process(self, message: _Received, area: str, received: dt.datetime) -> bytes:
        envelope = message.envelope
        handler = self._handler(envelope.infno)
        await self._claim(message, area, received)
        call = Call(envelope, self._upstreams, self._persons, received)
        try:
            outcome = await handler(call)
        except EnvelopeError:
            await self._release(message)
            raise
        except ServiceRefused as refused:
            refmsgid, body = self._answer_envelope(area, received, err_msg=refused.message)
            if not refused.final:
                return body  # nothing was decided: the msgid stays open for a repeat or a 2601
            return await self._store(message, body, "", refmsgid)
        refmsgid, body = self._answer_envelope(area, received, output=outcome.output)
        return await self._store(message, body, outcome.reference, refmsgid)

    async def forget_old_nonces(self) -> int:
        """Drop nonces whose timestamp can no longer pass the window (older than twice it)."""
        before = self._now() - dt.timedelta(seconds=2 * self._settings.timestamp_window_s)
        return await self._nonces.forget_old(before)

    # --- msgid idempotency ---

    async def _claim(self, message: _Received, area: str, received: dt.datetime) -> None:
        """Spend the nonce, check the sign-in, and record the msgid as PENDING, or find what is
        stored for it.

        Each step is one statement that commits on its own (the nonce may be in Redis, the
        sign-in in memory), so none waits for another's transaction. A refused message keeps
        its nonce spent; one the platform failed to record gives it back, so that the same
        request can be sent again. A repeat's stored answer comes back from the claiming
        statement itself, so a response cache would save nothing."""
        envelope, signed = message.envelope, message.signed
        if not await self._nonces.spend(signed.paasid, signed.nonce, self._now()):
            raise EnvelopeError(f"x-tif-nonce {signed.nonce} was already used")
        try:
            await self._require_session(envelope)
            row = MessageRow(
                fixmedins_code=envelope.fixmedins_code,
                msgid=envelope.msgid,
                infno=envelope.infno,
                state=PENDING,
                request_hash=message.request_hash,
                request_body=message.canonical,
                response=None,
                reference="",
                reversed_by="",
                trace_id=current_trace_id(),
                inf_refmsgid="",
                created_at=received,
            )
            stored = await self._messages.claim(row)
        except EnvelopeError:
            raise
        except Exception:
            await self._nonces.give_back(signed.paasid, signed.nonce)
            raise
        self._answer_from(stored, message.request_hash, area, received)

    def _answer_from(
        self, stored: MessageRow, request_hash: str, area: str, received: dt.datetime
    ) -> None:
        """Raise _Answered unless the message is still to be processed (PENDING, same body)."""
        if stored.state == REVERSED:
            raise _Answered(
                self._refusal(
                    area,
                    received,
                    f"msgid {stored.msgid} was reversed by 2601 (msgid {stored.reversed_by}); "
                    "use a new msgid",
                )
            )
        if stored.request_hash != request_hash:
            raise _Answered(
                self._refusal(
                    area,
                    received,
                    f"msgid {stored.msgid} was already used for another request "
                    f"(infno {stored.infno}); use a new msgid",
                )
            )
        if stored.state == DONE and stored.response is not None:
            raise _Answered(stored.response)

    async def _release(self, message: _Received) -> None:
        """A refused input decided nothing: the msgid may be used again with a corrected body."""
        envelope = message.envelope
        async with self._sessions.begin() as session:
            repository = GatewayRepository(session)
            row = await repository.message(envelope.fixmedins_code, envelope.msgid, lock=True)
            if (
                row is not None
                and row.state == PENDING
                and row.request_hash == message.request_hash
            ):
                await session.delete(row)

    async def _store(self, message: _Received, body: bytes, reference: str, refmsgid: str) -> bytes:
        """Make `body` (answered as `refmsgid`) the message's final answer, unless another
        request got there first."""
        envelope = message.envelope
        if await self._messages.finish(
            envelope.fixmedins_code, envelope.msgid, body, reference, refmsgid
        ):
            return body
        stored = await self._messages.stored(envelope.fixmedins_code, envelope.msgid)
        if stored.state == REVERSED:
            return self._refusal(
                _NO_AREA,
                self._now(),
                f"msgid {stored.msgid} was reversed by 2601 (msgid {stored.reversed_by})",
            )
        assert stored.response is not None
        return stored.response

    # --- the gateway's own transactions ---

    async def _sign_in(self, call: Call) -> Outcome:
        """9001: open a session; its sign_no goes into every later envelope."""
        node = call.input.child("signIn")
        opter_no = node.text("opter_no", 20)
        node.text("mac", 20, required=False)
        node.text("ip", 20)
        now = self._now()
        sign_no = f"{now.astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.randbelow(10**16):016d}"
        async with self._sessions.begin() as session:
            GatewayRepository(session).add_session(
                SessionRow(
                    sign_no=sign_no,
                    fixmedins_code=call.fixmedins_code,
                    opter_no=opter_no,
                    signed_in_at=now,
                    expires_at=now + dt.timedelta(seconds=self._settings.session_ttl_s),
                    signed_out_at=None,
                )
            )
        output = {"signinoutb": {"sign_time": _local(now), "sign_no": sign_no}}
        return Outcome(output, reference=sign_no)

    async def _sign_out(self, call: Call) -> Outcome:
        """9002: close the session named in signOut."""
        node = call.input.child("signOut")
        sign_no = node.text("sign_no", 30)
        node.text("opter_no", 20, required=False)
        now = self._now()
        async with self._sessions.begin() as session:
            row = await GatewayRepository(session).session(sign_no)
            if row is None or row.fixmedins_code != call.fixmedins_code:
                raise EnvelopeError(f"input.signOut.sign_no {sign_no} is not a sign-in of yours")
            row.signed_out_at = row.signed_out_at or now
        self._sign_ins.delete([sign_no])
        return Outcome({"signoutoutb": {"sign_time": _local(now)}}, reference=sign_no)

    async def _reverse(self, call: Call) -> Outcome:
        """2601: undo a message whose outcome the HIS does not know (冲正).

        The original may be finished (its result is undone), still PENDING (it is completed
        first, the services being idempotent, then undone) or never seen (a tombstone makes a
        late arrival of it refused).
        """
        data = call.input.child("data")
        psn_no = data.text("psn_no", 30)
        omsgid = data.text("omsgid", 30)
        oinfno = data.text("oinfno", 6)
        if oinfno not in REVERSIBLE:
            raise EnvelopeError(
                f"input.data.oinfno {oinfno} cannot be reversed; reversible: "
                f"{', '.join(sorted(REVERSIBLE))} (a cancelled settlement is settled again)"
            )
        original = await self._tombstone_or_original(call, omsgid, oinfno)
        if original is None:
            return Outcome({}, reference=omsgid)
        if original.infno != oinfno:
            raise EnvelopeError(
                f"input.data.omsgid {omsgid} was infno {original.infno}, not {oinfno}"
            )
        reference = await self._result_of(original)
        if reference:
            if REVERSIBLE[oinfno] == "visit":
                await cancel_visit_by_id(call, reference, psn_no)
            else:
                found = await ask(
                    self._upstreams.settlement.GetSettlement(
                        settlement_service_pb2.GetSettlementRequest(
                            setl_id=reference, fixmedins_code=call.fixmedins_code
                        ),
                        metadata=AS_GATEWAY,
                    ),
                    "settlement",
                )
                if found.status == settlement_pb2.SETTLEMENT_STATUS_LIVE:
                    await cancel_settlement_by_id(call, reference, found.mdtrt_id, psn_no)
        async with self._sessions.begin() as session:
            row = await GatewayRepository(session).message(call.fixmedins_code, omsgid, lock=True)
            assert row is not None
            row.state = REVERSED
            row.reversed_by = call.envelope.msgid
        return Outcome({}, reference=omsgid)

    async def _tombstone_or_original(
        self, call: Call, omsgid: str, oinfno: str
    ) -> MessageRow | None:
        """The original message, or None after leaving a tombstone in its place."""
        tombstone = MessageRow(
            fixmedins_code=call.fixmedins_code,
            msgid=omsgid,
            infno=oinfno,
            state=REVERSED,
            request_hash="",
            request_body=b"",
            response=None,
            reference="",
            reversed_by=call.envelope.msgid,
            trace_id=current_trace_id(),
            inf_refmsgid="",
            created_at=self._now(),
        )
        stored = await self._messages.claim(tombstone)
        if stored.state == REVERSED:
            return None  # our tombstone, or an earlier reversal: nothing more to undo
        return stored

    async def _result_of(self, original: MessageRow) -> str:
        """What the original created ('' if it was refused), finishing it first if PENDING."""
        if original.state == DONE:
            assert original.response is not None
            answered = codec.decode(original.response)
            return original.reference if answered.get("infcode") == 0 else ""
        envelope = parse_envelope(codec.decode(original.request_body))
        replay = Call(envelope, self._upstreams, self._persons, self._now())
        try:
            outcome = await SERVICE_TRANSACTIONS[original.infno](replay)
        except ServiceRefused as refused:
            if not refused.final:
                raise
            return ""
        return outcome.reference


async def _credential_of(repository: GatewayRepository, paasid: str) -> tuple[str, str] | None:
    """(fixmedins_code, secret) of a paasid."""
    row = await repository.credential_by_paasid(paasid)
    return None if row is None else (row.fixmedins_code, row.secret)


async def _sign_in_of(repository: GatewayRepository, sign_no: str) -> _SignIn | None:
    row = await repository.session(sign_no)
    if row is None:
        return None
    return _SignIn(row.fixmedins_code, stored_utc(row.expires_at), bool(row.signed_out_at))


def _local(moment: dt.datetime) -> str:
    return f"{moment.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"
