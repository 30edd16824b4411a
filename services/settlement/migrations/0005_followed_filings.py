"""A copy of filing's live filings, from its change stream; the stream is followed again from
its start to fill it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add followed_filings; forget the stream's cursor, so that following resumes at the start
    of filing's log and copies the filings created before this revision too (ends already
    recorded are recorded again as they were)."""
    op.create_table(
        "followed_filings",
        sa.Column("filing_id", sa.String(length=21), nullable=False),
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("dest_admdvs", sa.String(length=6), nullable=False),
        sa.Column("begin_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("filing_id", name=op.f("pk_followed_filings")),
    )
    with op.batch_alter_table("followed_filings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_followed_filings_psn_no"), ["psn_no"], unique=False)
    op.execute("DELETE FROM filing_feed")


def downgrade() -> None:
    """Undo this revision (the cursor stays where following reached)."""
    with op.batch_alter_table("followed_filings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followed_filings_psn_no"))
    op.drop_table("followed_filings")
