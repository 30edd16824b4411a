"""Visits keep their admission filing's category; filings' ends as filing's stream reports them

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add visits.filing_category ("" on earlier visits), filing_ends and filing_feed."""
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("filing_category", sa.String(length=32), nullable=False, server_default="")
        )
    op.create_table(
        "filing_ends",
        sa.Column("filing_id", sa.String(length=21), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("filing_id", name=op.f("pk_filing_ends")),
    )
    op.create_table(
        "filing_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filing_feed")),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table("filing_feed")
    op.drop_table("filing_ends")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_column("filing_category")
