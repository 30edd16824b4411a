"""Prepayments, top-ups and usage warnings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "prepayment_top_ups",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("topped_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_prepayment_top_ups_positive")),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prepayment_top_ups")),
    )
    op.create_table(
        "prepayment_warnings",
        sa.Column("warning_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("usage", sa.String(length=8), nullable=False),
        sa.Column("top_up_requested", sa.Boolean(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("warning_id", name=op.f("pk_prepayment_warnings")),
    )
    with op.batch_alter_table("prepayment_warnings", schema=None) as batch_op:
        batch_op.create_index("ix_prepayment_warnings_year", ["year"], unique=False)

    op.create_table(
        "prepayments",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("base_fen", sa.BigInteger(), nullable=False),
        sa.Column("topped_up_fen", sa.BigInteger(), nullable=False),
        sa.Column("set_by_hand", sa.Boolean(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("overdrawn", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "base_fen >= 0 AND topped_up_fen >= 0", name=op.f("ck_prepayments_not_negative")
        ),
        sa.CheckConstraint("level IN (1, 2, 3)", name=op.f("ck_prepayments_known_level")),
        sa.PrimaryKeyConstraint(
            "year", "insured_prov", "treatment_prov", name=op.f("pk_prepayments")
        ),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table("prepayments")
    with op.batch_alter_table("prepayment_warnings", schema=None) as batch_op:
        batch_op.drop_index("ix_prepayment_warnings_year")

    op.drop_table("prepayment_warnings")
    op.drop_table("prepayment_top_ups")
