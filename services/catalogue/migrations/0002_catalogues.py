"""Catalogue versions and items, institutions, item mappings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the catalogue tables."""
    op.create_table(
        "catalogue_heads",
        sa.Column("prov_admdvs", sa.String(6), primary_key=True),
        sa.Column("current_version", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "catalogue_versions",
        sa.Column("prov_admdvs", sa.String(6), primary_key=True),
        sa.Column("version", sa.BigInteger(), primary_key=True),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("changed_count", sa.BigInteger(), nullable=False),
        sa.Column("removed_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "catalogue_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("prov_admdvs", sa.String(6), nullable=False),
        sa.Column("med_list_codg", sa.String(50), nullable=False),
        sa.Column("version_from", sa.BigInteger(), nullable=False),
        sa.Column("version_to", sa.BigInteger(), nullable=True),
        sa.Column("list_type", sa.String(3), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("item_class", sa.Integer(), nullable=False),
        sa.Column("selfpay_prop", sa.String(8), nullable=False),
        sa.Column("price_cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("med_types", sa.String(100), nullable=False),
        sa.Column("begin_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.CheckConstraint("version_to IS NULL OR version_to > version_from", name="version_range"),
    )
    op.create_index(
        "ix_catalogue_items_prov_code", "catalogue_items", ["prov_admdvs", "med_list_codg"]
    )
    op.create_index(
        "ix_catalogue_items_prov_from", "catalogue_items", ["prov_admdvs", "version_from"]
    )
    op.create_table(
        "institutions",
        sa.Column("fixmedins_code", sa.String(30), primary_key=True),
        sa.Column("fixmedins_name", sa.String(200), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("open_inpatient", sa.Boolean(), nullable=False),
        sa.Column("open_outpatient", sa.Boolean(), nullable=False),
        sa.Column("open_chronic", sa.Boolean(), nullable=False),
        sa.Column("begin_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
    )
    op.create_index("ix_institutions_admdvs", "institutions", ["admdvs"])
    op.create_table(
        "item_mappings",
        sa.Column("fixmedins_code", sa.String(30), primary_key=True),
        sa.Column("medins_list_codg", sa.String(150), primary_key=True),
        sa.Column("med_list_codg", sa.String(50), nullable=False),
    )


def downgrade() -> None:
    """Drop the catalogue tables."""
    for table in (
        "item_mappings",
        "institutions",
        "catalogue_items",
        "catalogue_versions",
        "catalogue_heads",
    ):
        op.drop_table(table)
