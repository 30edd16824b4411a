"""Tables owned by the filing service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the filing service's own database."""

    metadata = new_metadata()


class FilingRow(Base):
    """A filing. At most one ACTIVE filing per person (a partial unique index)."""

    __tablename__ = "filings"
    __table_args__ = (
        Index(
            "uq_filings_active_psn_no",
            "psn_no",
            unique=True,
            postgresql_where=text("status = 1"),
            sqlite_where=text("status = 1"),
        ),
        Index("ix_filings_psn_no", "psn_no"),
        Index("ix_filings_dest_admdvs", "dest_admdvs"),
    )

    filing_id: Mapped[str] = mapped_column(String(21), primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(30))
    category: Mapped[int] = mapped_column(Integer)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    dest_admdvs: Mapped[str] = mapped_column(String(6))
    begin_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[int] = mapped_column(Integer)
    channel: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_by: Mapped[str] = mapped_column(String(21))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))


class FilingChangeRow(Base):
    """The change log WatchFilings reads: cursor order is commit order (see FilingSequenceRow)."""

    __tablename__ = "filing_changes"
    __table_args__ = (Index("ix_filing_changes_dest_prov_cursor", "dest_prov", "cursor"),)

    cursor: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    dest_prov: Mapped[str] = mapped_column(String(2))
    dest_admdvs: Mapped[str] = mapped_column(String(6))
    change_type: Mapped[int] = mapped_column(Integer)
    filing: Mapped[bytes] = mapped_column(LargeBinary)
    """The filing after the change, a serialized medsettle.filing.v1.Filing."""


class FilingSequenceRow(Base):
    """One row holding the last cursor used.

    Every writing transaction locks it first, so cursors become visible in increasing order:
    a watcher that has seen cursor N can never later meet a committed cursor below N.
    """

    __tablename__ = "filing_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_cursor: Mapped[int] = mapped_column(BigInteger)
