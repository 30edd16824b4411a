"""Tables owned by the identity service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the identity service's own database."""

    metadata = new_metadata()


class AreaRow(Base):
    """An administrative area (regions.csv)."""

    __tablename__ = "areas"

    admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prov_admdvs: Mapped[str] = mapped_column(String(6), index=True)


class PersonRow(Base):
    """An insured person. certno and psn_name are personal data: never logged."""

    __tablename__ = "persons"

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    psn_cert_type: Mapped[str] = mapped_column(String(6))
    certno: Mapped[str] = mapped_column(String(50), unique=True)
    psn_name: Mapped[str] = mapped_column(String(50))
    gend: Mapped[str] = mapped_column(String(1))
    naty: Mapped[str] = mapped_column(String(4))
    brdy: Mapped[dt.date] = mapped_column(Date)


class InsuranceRow(Base):
    """One insurance record of a person."""

    __tablename__ = "insurances"

    psn_no: Mapped[str] = mapped_column(
        ForeignKey("persons.psn_no", ondelete="CASCADE"), primary_key=True
    )
    insutype: Mapped[str] = mapped_column(String(6), primary_key=True)
    psn_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    balc_fen: Mapped[int] = mapped_column(BigInteger)
    idet_types: Mapped[str] = mapped_column(String(200))
    """Assistance identities, ';'-separated."""


class CardRow(Base):
    """A social security card."""

    __tablename__ = "cards"

    card_no: Mapped[str] = mapped_column(String(20), primary_key=True)
    psn_no: Mapped[str] = mapped_column(
        ForeignKey("persons.psn_no", ondelete="CASCADE"), index=True
    )
    card_sn: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    replaced_by: Mapped[str] = mapped_column(String(20))


class VoucherRow(Base):
    """An issued e-voucher token (the token itself holds only voucher_id and expiry)."""

    __tablename__ = "vouchers"

    voucher_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    psn_no: Mapped[str] = mapped_column(ForeignKey("persons.psn_no", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
