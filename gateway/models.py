"""Tables owned by the gateway: institution credentials, sign-in sessions, messages, nonces."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import CheckConstraint, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Message states. A message is PENDING from the moment it is accepted until the services gave a
# final answer (DONE); REVERSED once a 2601 reversed it or arrived before it (a tombstone).
PENDING = 1
DONE = 2
REVERSED = 3


class Base(DeclarativeBase):
    """Declarative base of the gateway's own database."""

    metadata = new_metadata()


class CredentialRow(Base):
    """An institution's API credentials (x-tif-paasid and the secret that signs its requests)."""

    __tablename__ = "credentials"

    fixmedins_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    paasid: Mapped[str] = mapped_column(String(40), unique=True)
    secret: Mapped[str] = mapped_column(String(64))
    """Kept readable: the signature scheme (SHA-256 over timestamp + secret + nonce + timestamp)
    needs the secret itself, not a hash of it."""
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    """A sign-in session (9001) of one institution's operator."""

    __tablename__ = "sessions"

    sign_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(String(30), index=True)
    opter_no: Mapped[str] = mapped_column(String(20))
    signed_in_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    signed_out_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class MessageRow(Base):
    """One hospital message, by (institution, msgid): its fingerprint and, once final, the exact
    response bytes that every repeat receives."""

    __tablename__ = "messages"
    __table_args__ = (CheckConstraint("state IN (1, 2, 3)", name="known_state"),)

    fixmedins_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    msgid: Mapped[str] = mapped_column(String(30), primary_key=True)
    infno: Mapped[str] = mapped_column(String(6))
    state: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the canonical request body; empty for a tombstone."""
    request_body: Mapped[bytes] = mapped_column(LargeBinary)
    """The canonical request, so a 2601 can finish a message left PENDING before reversing it."""
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    reference: Mapped[str] = mapped_column(String(30))
    """What a success created: the setl_id of 2207/2304, the mdtrt_id of 2201/2401."""
    reversed_by: Mapped[str] = mapped_column(String(30))
    """msgid of the 2601 that reversed this message."""
    trace_id: Mapped[str] = mapped_column(String(32), server_default="")
    """W3C trace id (32 hex) of the request that first carried the msgid, where its spans are."""
    inf_refmsgid: Mapped[str] = mapped_column(String(30), index=True, server_default="")
    """The receiver message id of the stored answer; empty until there is one."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class NonceRow(Base):
    """A nonce already used by a paasid; kept for twice the timestamp window."""

    __tablename__ = "nonces"

    paasid: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
