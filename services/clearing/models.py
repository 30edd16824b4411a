"""Tables owned by the clearing service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, Index, Integer, String
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
    event_day: Mapped[str] = mapped_column(String(10), index=True)
    """YYYY-MM-DD in Asia/Shanghai of event_time (daily statistics)."""
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
    cleared_period: Mapped[str | None] = mapped_column(String(7), index=True)
    """The clearing period that included this entry; empty until cleared (or while disputed)."""


class PeriodRow(Base):
    """A clearing period and its state (PeriodState numbers)."""

    __tablename__ = "clearing_periods"
    __table_args__ = (CheckConstraint("state IN (1, 2, 3)", name="known_state"),)

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    state: Mapped[int] = mapped_column(Integer)
    statement_hash: Mapped[str] = mapped_column(String(64))
    run_request_id: Mapped[str] = mapped_column(String(64))
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TreatmentConfirmationRow(Base):
    """A treatment province's confirmation that its month is complete."""

    __tablename__ = "treatment_confirmations"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    province: Mapped[str] = mapped_column(String(6), primary_key=True)
    confirmed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StatementRow(Base):
    """What one insured province owes one treatment province for a period, in fen."""

    __tablename__ = "statements"
    __table_args__ = (
        CheckConstraint(
            "clearing_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen",
            name="amount_adds_up",
        ),
    )

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    insured_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    treatment_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    entry_count: Mapped[int] = mapped_column(Integer)
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    hifp_pay_fen: Mapped[int] = mapped_column(BigInteger)
    critical_pay_fen: Mapped[int] = mapped_column(BigInteger)
    maf_pay_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    clearing_fen: Mapped[int] = mapped_column(BigInteger)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class DisputeRow(Base):
    """A settlement an insured province disputed (DisputeState numbers)."""

    __tablename__ = "disputes"
    __table_args__ = (CheckConstraint("state IN (1, 2)", name="known_state"),)

    setl_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    period: Mapped[str] = mapped_column(String(7))
    insured_prov: Mapped[str] = mapped_column(String(6))
    reason: Mapped[str] = mapped_column(String(200))
    state: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PrepaymentRow(Base):
    """What an insured province prepaid a treatment province for a year, and its usage level."""

    __tablename__ = "prepayments"
    __table_args__ = (
        CheckConstraint("base_fen >= 0 AND topped_up_fen >= 0", name="not_negative"),
        CheckConstraint("level IN (1, 2, 3)", name="known_level"),
    )

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    insured_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    treatment_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    base_fen: Mapped[int] = mapped_column(BigInteger)
    """Computed from last year's spend, or set by hand."""
    topped_up_fen: Mapped[int] = mapped_column(BigInteger)
    set_by_hand: Mapped[bool] = mapped_column(Boolean)
    level: Mapped[int] = mapped_column(Integer)
    """UsageLevel the usage was last at; a warning is raised only when it rises."""
    overdrawn: Mapped[bool] = mapped_column(Boolean)


class PairSpendRow(Base):
    """A pair's spend of a year not yet in a closed clearing period, kept as a running total.

    Each ledger entry adds its funds and account amount (a cancellation's are negative) to the
    year of its period; closing a period takes off what it cleared. Summing the ledger instead
    would cost each event a scan of its pair's whole year.
    """

    __tablename__ = "pair_spend"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    insured_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    treatment_prov: Mapped[str] = mapped_column(String(6), primary_key=True)
    uncleared_fen: Mapped[int] = mapped_column(BigInteger)
    """hifp + critical illness + maf + account, fen, of the entries not in a closed period."""


class TopUpRow(Base):
    """One top-up, by its request id (a repeat changes nothing)."""

    __tablename__ = "prepayment_top_ups"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="positive"),)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    insured_prov: Mapped[str] = mapped_column(String(6))
    treatment_prov: Mapped[str] = mapped_column(String(6))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    topped_up_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PrepaymentWarningRow(Base):
    """A usage warning, raised when the usage crossed 70% or 90% upwards."""

    __tablename__ = "prepayment_warnings"
    __table_args__ = (Index("ix_prepayment_warnings_year", "year"),)

    warning_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(Integer)
    insured_prov: Mapped[str] = mapped_column(String(6))
    treatment_prov: Mapped[str] = mapped_column(String(6))
    level: Mapped[int] = mapped_column(Integer)
    usage: Mapped[str] = mapped_column(String(8))
    top_up_requested: Mapped[bool] = mapped_column(Boolean)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
