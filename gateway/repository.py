"""Every query of the gateway's own database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.models import DONE, PENDING, Base, CredentialRow, MessageRow, NonceRow, SessionRow
from services.common.db import insert_missing
from services.common.driver import DriverPool, DriverStatement


class GatewayRepository:
    """Queries over one session; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # --- credentials ---

    async def credential_by_paasid(self, paasid: str) -> CredentialRow | None:
        """The credentials a request's x-tif-paasid names."""
        return await self._session.scalar(
            select(CredentialRow).where(CredentialRow.paasid == paasid)
        )

    async def replace_credential(self, row: CredentialRow) -> None:
        """Issue credentials to an institution, replacing earlier ones (they stop working)."""
        await self._session.execute(
            delete(CredentialRow).where(CredentialRow.fixmedins_code == row.fixmedins_code)
        )
        self._session.add(row)

    # --- sign-in sessions ---

    def add_session(self, row: SessionRow) -> None:
        """Record a sign-in."""
        self._session.add(row)

    async def session(self, sign_no: str) -> SessionRow | None:
        """One sign-in session."""
        return await self._session.get(SessionRow, sign_no)

    # --- nonces ---

    async def use_nonce(self, paasid: str, nonce: str, now: dt.datetime) -> bool:
        """Record a nonce; False when this paasid used it before."""
        return await insert_missing(
            self._session, NonceRow, {"paasid": paasid, "nonce": nonce, "seen_at": now}
        )

    async def forget_nonce(self, paasid: str, nonce: str) -> None:
        """Make one nonce usable again."""
        await self._session.execute(
            delete(NonceRow).where(NonceRow.paasid == paasid, NonceRow.nonce == nonce)
        )

    async def forget_nonces(self, before: dt.datetime) -> int:
        """Drop nonces older than the window in which a replay could still be accepted."""
        result = await self._session.execute(delete(NonceRow).where(NonceRow.seen_at < before))
        return int(getattr(result, "rowcount", 0))

    # --- messages (claimed and finished by MessageLog) ---

    async def message(
        self, fixmedins_code: str, msgid: str, *, lock: bool = False
    ) -> MessageRow | None:
        """One message, fresh from the database."""
        query = select(MessageRow).where(
            MessageRow.fixmedins_code == fixmedins_code, MessageRow.msgid == msgid
        )
        if lock:
            query = query.with_for_update()
        return await self._session.scalar(query.execution_options(populate_existing=True))

    async def find_message(self, reference: str) -> MessageRow | None:
        """A message by the inf_refmsgid of its answer or by its msgid (whose first twelve
        characters are the institution)."""
        by_answer = await self._session.scalar(
            select(MessageRow).where(MessageRow.inf_refmsgid == reference).limit(1)
        )
        return by_answer or await self.message(reference[:12], reference)


class MessageLog:
    """The two writes every hospital message makes: its claim when it arrives and its answer
    when it is final. Each is one statement in autocommit: on PostgreSQL run on asyncpg
    directly (`driver`, services.common.driver), elsewhere on a SQLAlchemy connection."""

    def __init__(self, autocommit: AsyncEngine, driver: DriverPool | None = None) -> None:
        self._engine = autocommit  # services.common.db.autocommit_engine
        self._driver = driver

    async def claim(self, row: MessageRow) -> MessageRow:
        """The message row for (institution, msgid): this new one, or the one stored before
        (a transient copy, read after the insert found it)."""
        values = {column.key: getattr(row, column.key) for column in _MESSAGES.columns}
        if self._driver is not None:
            inserted = await self._driver.execute(_CLAIM, values) == 1
        else:
            async with self._engine.begin() as connection:
                inserted = await insert_missing(connection, MessageRow, values)
        if inserted:
            return row  # the usual case, a new msgid: no need to read back what was written
        return await self.stored(row.fixmedins_code, row.msgid)

    async def stored(self, fixmedins_code: str, msgid: str) -> MessageRow:
        """A message known to be stored, as it is now (a transient copy): what a claim or a
        finish that lost to another request reads back."""
        async with self._engine.connect() as connection:
            found = await connection.execute(
                _MESSAGE, {"key_code": fixmedins_code, "key_msgid": msgid}
            )
            return MessageRow(**found.one()._mapping)

    async def finish(
        self, fixmedins_code: str, msgid: str, response: bytes, reference: str, inf_refmsgid: str
    ) -> bool:
        """Store the final response of a PENDING message; False if another request finished (or
        reversed) it first, whose stored state then wins."""
        values = {
            "key_code": fixmedins_code,
            "key_msgid": msgid,
            "response": response,
            "reference": reference,
            "inf_refmsgid": inf_refmsgid,
        }
        if self._driver is not None:
            return await self._driver.execute(_FINISH_ON_DRIVER, values) == 1
        async with self._engine.begin() as connection:
            result = await connection.execute(_FINISH, values)
        return result.rowcount == 1


# Built once: a Core statement skips the ORM's bulk-update machinery, which took a quarter of the
# time the gateway spent handling a message.
_MESSAGES = Base.metadata.tables[MessageRow.__tablename__]
_MESSAGE = select(_MESSAGES).where(
    _MESSAGES.c.fixmedins_code == bindparam("key_code"),
    _MESSAGES.c.msgid == bindparam("key_msgid"),
)
_FINISH = (
    update(_MESSAGES)
    .where(
        _MESSAGES.c.fixmedins_code == bindparam("key_code"),
        _MESSAGES.c.msgid == bindparam("key_msgid"),
        _MESSAGES.c.state == PENDING,
    )
    .values(
        state=DONE,
        response=bindparam("response"),
        reference=bindparam("reference"),
        inf_refmsgid=bindparam("inf_refmsgid"),
    )
)
# The same two writes for asyncpg: the claim is services.common.db.insert_missing's statement.
_CLAIM = DriverStatement.of(
    postgresql.insert(_MESSAGES).on_conflict_do_nothing(),
    [column.key for column in _MESSAGES.columns],
)
_FINISH_ON_DRIVER = DriverStatement.of(
    _FINISH, ["key_code", "key_msgid", "response", "reference", "inf_refmsgid"]
)
