"""Tables owned by the catalogue service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import new_metadata


class Base(DeclarativeBase):
    """Declarative base of the catalogue service's own database."""

    metadata = new_metadata()


class CatalogueHeadRow(Base):
    """A province's current catalogue version; uploads lock this row, one at a time."""

    __tablename__ = "catalogue_heads"

    prov_admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    current_version: Mapped[int] = mapped_column(BigInteger)


class CatalogueVersionRow(Base):
    """One upload of a province's catalogue."""

    __tablename__ = "catalogue_versions"

    prov_admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_count: Mapped[int] = mapped_column(BigInteger)
    changed_count: Mapped[int] = mapped_column(BigInteger)
    removed_count: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class CatalogueItemRow(Base):
    """An item's content, valid for versions [version_from, version_to) of its province.

    An unchanged item keeps its row across uploads, so a version costs only what changed and
    any old version stays readable.
    """

    __tablename__ = "catalogue_items"
    __table_args__ = (
        Index("ix_catalogue_items_prov_code", "prov_admdvs", "med_list_codg"),
        Index("ix_catalogue_items_prov_from", "prov_admdvs", "version_from"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prov_admdvs: Mapped[str] = mapped_column(String(6))
    med_list_codg: Mapped[str] = mapped_column(String(50))
    version_from: Mapped[int] = mapped_column(BigInteger)
    version_to: Mapped[int | None] = mapped_column(BigInteger)
    list_type: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(200))
    item_class: Mapped[int] = mapped_column(Integer)
    selfpay_prop: Mapped[str] = mapped_column(String(8))
    price_cap_fen: Mapped[int | None] = mapped_column(BigInteger)
    min_level: Mapped[int] = mapped_column(Integer)
    med_types: Mapped[str] = mapped_column(String(100))
    begin_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)


class InstitutionRow(Base):
    """A designated medical institution."""

    __tablename__ = "institutions"

    fixmedins_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    fixmedins_name: Mapped[str] = mapped_column(String(200))
    admdvs: Mapped[str] = mapped_column(String(6), index=True)
    level: Mapped[int] = mapped_column(Integer)
    open_inpatient: Mapped[bool] = mapped_column(Boolean)
    open_outpatient: Mapped[bool] = mapped_column(Boolean)
    open_chronic: Mapped[bool] = mapped_column(Boolean)
    begin_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)


class ItemMappingRow(Base):
    """An institution's own item code mapped to a national code."""

    __tablename__ = "item_mappings"

    fixmedins_code: Mapped[str] = mapped_column(String(30), primary_key=True)
    medins_list_codg: Mapped[str] = mapped_column(String(150), primary_key=True)
    med_list_codg: Mapped[str] = mapped_column(String(50))
