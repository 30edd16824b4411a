"""Tables owned by the clearing service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the clearing service's own database."""

    metadata = new_metadata()


class LedgerEntryRow(Base):
    """One ledger event: a settlement (positive amounts) or its cancellation (negative)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_period_provinces", "period", "insured_prov", "treatment_prov"),
        Index("ix_ledger_entries_institution_time", "fixmedins_code", "event_time"),
        CheckConstraint(
            "fund_pay_sumamt_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen",
            name="funds_add_up",
        ),
    )

    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[int] = mapped_column(Integer)
    setl_id: Mapped[str] = mapped_column(String(30), index=True)
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    psn_no: Mapped[str] = mapped_column(String(30))
    fixmedins_code: Mapped[str] = mapped_column(String(30))
    treatment_admdvs: Mapped[str] = mapped_column(String(6))
    treatment_prov: Mapped[str] = mapped_column(String(6))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    insured_prov: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(3))
    med_type: Mapped[str] = mapped_column(String(2))
    event_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period: Mapped[str] = mapped_column(String(7))
    """Clearing month, YYYY-MM in Asia/Shanghai, of event_time."""
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    hifp_pay_fen: Mapped[int] = mapped_column(BigInteger)
    critical_pay_fen: Mapped[int] = mapped_column(BigInteger)
    maf_pay_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    event_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the event; a redelivery must carry the same."""
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
