"""A running total of each pair's spend of the year not yet in a closed clearing period.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create pair_spend and fill it from the ledger recorded so far."""
    op.create_table(
        "pair_spend",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("uncleared_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "year", "insured_prov", "treatment_prov", name=op.f("pk_pair_spend")
        ),
    )
    op.execute(
        """
        INSERT INTO pair_spend (year, insured_prov, treatment_prov, uncleared_fen)
        SELECT CAST(substr(period, 1, 4) AS INTEGER), insured_prov, treatment_prov,
               SUM(hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen)
        FROM ledger_entries
        WHERE cleared_period IS NULL
           OR cleared_period NOT IN (SELECT period FROM clearing_periods WHERE state = 3)
        GROUP BY CAST(substr(period, 1, 4) AS INTEGER), insured_prov, treatment_prov
        """
    )


def downgrade() -> None:
    """Drop pair_spend (the ledger still holds what it summed)."""
    op.drop_table("pair_spend")
