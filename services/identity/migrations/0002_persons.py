"""Areas, persons, insurance records, cards and e-vouchers.

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
    """Create the identity tables."""
    op.create_table(
        "areas",
        sa.Column("admdvs", sa.String(6), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prov_admdvs", sa.String(6), nullable=False),
    )
    op.create_index("ix_areas_prov_admdvs", "areas", ["prov_admdvs"])
    op.create_table(
        "persons",
        sa.Column("psn_no", sa.String(30), primary_key=True),
        sa.Column("psn_cert_type", sa.String(6), nullable=False),
        sa.Column("certno", sa.String(50), nullable=False),
        sa.Column("psn_name", sa.String(50), nullable=False),
        sa.Column("gend", sa.String(1), nullable=False),
        sa.Column("naty", sa.String(4), nullable=False),
        sa.Column("brdy", sa.Date(), nullable=False),
        sa.UniqueConstraint("certno", name="uq_persons_certno"),
    )
    op.create_table(
        "insurances",
        sa.Column(
            "psn_no",
            sa.String(30),
            sa.ForeignKey("persons.psn_no", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("insutype", sa.String(6), primary_key=True),
        sa.Column("psn_type", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("balc_fen", sa.BigInteger(), nullable=False),
        sa.Column("idet_types", sa.String(200), nullable=False),
        sa.CheckConstraint("balc_fen >= 0", name="balc_not_negative"),
    )
    op.create_table(
        "cards",
        sa.Column("card_no", sa.String(20), primary_key=True),
        sa.Column(
            "psn_no",
            sa.String(30),
            sa.ForeignKey("persons.psn_no", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("card_sn", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("replaced_by", sa.String(20), nullable=False),
    )
    op.create_index("ix_cards_psn_no", "cards", ["psn_no"])
    op.create_table(
        "vouchers",
        sa.Column("voucher_id", sa.String(32), primary_key=True),
        sa.Column(
            "psn_no",
            sa.String(30),
            sa.ForeignKey("persons.psn_no", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_vouchers_expires_at", "vouchers", ["expires_at"])


def downgrade() -> None:
    """Drop the identity tables."""
    for table in ("vouchers", "cards", "insurances", "persons", "areas"):
        op.drop_table(table)
