"""Tables owned by the settlement service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata

# Status codes shared by fee lines and settlements (SettlementStatus numbers).
LIVE = 1
CANCELLED = 2
# VisitStatus.VISIT_STATUS_CANCELLED: the partial unique index below names it too.
VISIT_CANCELLED = 3


class Base(DeclarativeBase):
    """Declarative base of the settlement service's own database."""

    metadata = new_metadata()


class PolicyRow(Base):
    """One version of an insured-place policy; `current` marks the newest of each policy_id."""

    __tablename__ = "policies"
    __table_args__ = (
        Index("ix_policies_selection", "insutype", "year", "med_type", "current"),
        Index("ix_policies_area", "insuplc_admdvs", "current"),
    )

    policy_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(3))
    year: Mapped[int] = mapped_column(Integer)
    med_type: Mapped[str] = mapped_column(String(2))
    psn_type: Mapped[str] = mapped_column(String(10))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    """The policy as a serialized medsettle.settlement.v1.Policy (without id, version, time)."""
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    current: Mapped[bool] = mapped_column(Boolean)


class VisitRow(Base):
    """A visit; one open visit per (institution, hospital visit number)."""

    __tablename__ = "visits"
    __table_args__ = (
        Index(
            "uq_visits_open_ipt_otp_no",
            "fixmedins_code",
            "ipt_otp_no",
            unique=True,
            postgresql_where=text("status != 3"),
            sqlite_where=text("status != 3"),
        ),
        Index("ix_visits_psn_no", "psn_no"),
    )

    mdtrt_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_code: Mapped[str] = mapped_column(String(30))
    ipt_otp_no: Mapped[str] = mapped_column(String(30))
    psn_no: Mapped[str] = mapped_column(String(30))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    treatment_admdvs: Mapped[str] = mapped_column(String(6))
    institution_level: Mapped[int] = mapped_column(Integer)
    insutype: Mapped[str] = mapped_column(String(3))
    psn_type: Mapped[str] = mapped_column(String(10))
    idet_types: Mapped[str] = mapped_column(String(200))
    """Assistance identities at admission, `;`-joined."""
    balc_fen: Mapped[int] = mapped_column(BigInteger)
    """Personal-account balance identity reported at admission (seeds the year's accumulator)."""
    med_type: Mapped[str] = mapped_column(String(2))
    begin_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    emergency: Mapped[bool] = mapped_column(Boolean)
    diagnoses: Mapped[bytes] = mapped_column(LargeBinary)
    """Serialized AdmitVisitRequest holding only the diagnoses."""
    status: Mapped[int] = mapped_column(Integer)
    filing_id: Mapped[str] = mapped_column(String(21))
    filing_category: Mapped[str] = mapped_column(String(32), server_default="")
    """The admission filing's category ("retired_relocated"...); "" without one, and on visits
    admitted before it was kept (their settlement asks filing)."""
    setl_id: Mapped[str | None] = mapped_column(String(30))
    """The live settlement, if any."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))


class FeeLineRow(Base):
    """An uploaded fee line and its classification; one live line per (visit, feedetl_sn)."""

    __tablename__ = "fee_lines"
    __table_args__ = (
        Index(
            "uq_fee_lines_live_sn",
            "mdtrt_id",
            "feedetl_sn",
            unique=True,
            postgresql_where=text("status = 1"),
            sqlite_where=text("status = 1"),
        ),
        CheckConstraint(
            "amount_fen = fulamt_ownpay_fen + overlmt_fen + preselfpay_fen + inscp_fen",
            name="parts_add_up",
        ),
        CheckConstraint(
            "fulamt_ownpay_fen >= 0 AND overlmt_fen >= 0 AND preselfpay_fen >= 0 "
            "AND inscp_fen >= 0",
            name="parts_not_negative",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"))
    feedetl_sn: Mapped[str] = mapped_column(String(30))
    status: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    """Hash of the line as sent; a re-upload with the same hash is a repeat."""
    classified: Mapped[bytes] = mapped_column(LargeBinary)
    """The serialized ClassifiedFee answered for the line."""
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_fen: Mapped[int] = mapped_column(BigInteger)
    overlmt_fen: Mapped[int] = mapped_column(BigInteger)
    preselfpay_fen: Mapped[int] = mapped_column(BigInteger)
    inscp_fen: Mapped[int] = mapped_column(BigInteger)
    catalogue_version: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SettlementRow(Base):
    """A settlement; at most one live settlement per visit."""

    __tablename__ = "settlements"
    __table_args__ = (
        Index(
            "uq_settlements_live_visit",
            "mdtrt_id",
            unique=True,
            postgresql_where=text("status = 1"),
            sqlite_where=text("status = 1"),
        ),
        Index("ix_settlements_psn_year", "psn_no", "year"),
        CheckConstraint(
            "medfee_sumamt_fen = fulamt_ownpay_fen + overlmt_selfpay_fen + preselfpay_fen "
            "+ inscp_fen",
            name="line_sums_add_up",
        ),
        CheckConstraint(
            "medfee_sumamt_fen = fund_pay_sumamt_fen + psn_part_fen", name="shares_add_up"
        ),
        CheckConstraint("psn_part_fen = acct_pay_fen + psn_cash_pay_fen", name="personal_adds_up"),
        CheckConstraint(
            "fund_pay_sumamt_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen",
            name="funds_add_up",
        ),
        CheckConstraint(
            "hifp_pay_fen >= 0 AND critical_pay_fen >= 0 AND maf_pay_fen >= 0 "
            "AND acct_pay_fen >= 0 AND psn_cash_pay_fen >= 0",
            name="payments_not_negative",
        ),
    )

    setl_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    mdtrt_id: Mapped[str] = mapped_column(ForeignKey("visits.mdtrt_id"))
    psn_no: Mapped[str] = mapped_column(String(30))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    year: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[str] = mapped_column(String(40))
    inpatient: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_fen: Mapped[int] = mapped_column(BigInteger)
    overlmt_selfpay_fen: Mapped[int] = mapped_column(BigInteger)
    preselfpay_fen: Mapped[int] = mapped_column(BigInteger)
    inscp_fen: Mapped[int] = mapped_column(BigInteger)
    hifp_pay_fen: Mapped[int] = mapped_column(BigInteger)
    critical_pay_fen: Mapped[int] = mapped_column(BigInteger)
    maf_pay_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    psn_part_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    burden_fen: Mapped[int] = mapped_column(BigInteger)
    """Personal in-scope burden it added to the year (inscp − hifp_pay)."""
    settlement: Mapped[bytes] = mapped_column(LargeBinary)
    """The serialized Settlement answered when it was made (replayed to repeats)."""
    cancellation: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The serialized Settlement answered by CancelSettlement (replayed to repeats)."""
    explanation: Mapped[bytes] = mapped_column(LargeBinary)
    """The serialized Explanation."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    cancel_request_hash: Mapped[str | None] = mapped_column(String(64))


class PersonYearRow(Base):
    """A person's annual accumulators in one insured area (locked by every settlement)."""

    __tablename__ = "person_years"
    __table_args__ = (
        CheckConstraint(
            "burden_fen >= 0 AND critical_paid_fen >= 0 AND assistance_paid_fen >= 0 "
            "AND account_balance_fen >= 0",
            name="not_negative",
        ),
    )

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    burden_fen: Mapped[int] = mapped_column(BigInteger)
    critical_paid_fen: Mapped[int] = mapped_column(BigInteger)
    assistance_paid_fen: Mapped[int] = mapped_column(BigInteger)
    account_balance_fen: Mapped[int] = mapped_column(BigInteger)


class PolicyYearRow(Base):
    """What one policy's pooled fund paid a person in a year; the cap is a CHECK backstop."""

    __tablename__ = "policy_years"
    __table_args__ = (
        CheckConstraint(
            "fund_paid_fen >= 0 AND fund_paid_fen <= annual_cap_fen", name="within_annual_cap"
        ),
        CheckConstraint("inpatient_settlements >= 0", name="count_not_negative"),
    )

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    policy_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    fund_paid_fen: Mapped[int] = mapped_column(BigInteger)
    inpatient_settlements: Mapped[int] = mapped_column(Integer)
    annual_cap_fen: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """A ledger event waiting for (or done with) delivery to clearing."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    event: Mapped[bytes] = mapped_column(LargeBinary)
    """The serialized medsettle.clearing.v1.LedgerEvent."""
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(String(500))
    traceparent: Mapped[str] = mapped_column(String(64))
    """W3C traceparent of the settlement that queued the event: its delivery joins that trace."""


class FilingEndRow(Base):
    """A filing that filing's change stream reported revoked or superseded (filing_ends.py)."""

    __tablename__ = "filing_ends"

    filing_id: Mapped[str] = mapped_column(String(21), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    """Position of the change in filing's log."""


class FollowedFilingRow(Base):
    """A live filing (created, not yet revoked or superseded) as filing's change stream reported
    it: what an admission reads instead of asking filing while the stream is current
    (filing_ends.py). Ended filings leave this table for `filing_ends`."""

    __tablename__ = "followed_filings"

    filing_id: Mapped[str] = mapped_column(String(21), primary_key=True)
    psn_no: Mapped[str] = mapped_column(String(30), index=True)
    category: Mapped[str] = mapped_column(String(32))
    """Category name, as visits keep it: "referral", "retired_relocated", ..."""
    dest_admdvs: Mapped[str] = mapped_column(String(6))
    begin_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    """Last day of validity; None for a long-term filing."""


class FilingFeedRow(Base):
    """How far filing's change stream has been followed (one row, id 1)."""

    __tablename__ = "filing_feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    """The last position recorded: a restart resumes after it."""
