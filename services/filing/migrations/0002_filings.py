"""Filings, their change log and its sequence.

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
    """Create the filing tables."""
    op.create_table(
        "filings",
        sa.Column("filing_id", sa.String(21), primary_key=True),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("category", sa.Integer(), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("dest_admdvs", sa.String(6), nullable=False),
        sa.Column("begin_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_by", sa.String(21), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("request_id", name="uq_filings_request_id"),
        sa.CheckConstraint("end_date IS NULL OR end_date >= begin_date", name="valid_dates"),
    )
    op.create_index(
        "uq_filings_active_psn_no",
        "filings",
        ["psn_no"],
        unique=True,
        postgresql_where=sa.text("status = 1"),
        sqlite_where=sa.text("status = 1"),
    )
    op.create_index("ix_filings_psn_no", "filings", ["psn_no"])
    op.create_index("ix_filings_dest_admdvs", "filings", ["dest_admdvs"])
    op.create_table(
        "filing_changes",
        sa.Column("cursor", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("dest_prov", sa.String(2), nullable=False),
        sa.Column("dest_admdvs", sa.String(6), nullable=False),
        sa.Column("change_type", sa.Integer(), nullable=False),
        sa.Column("filing", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_filing_changes_dest_prov_cursor", "filing_changes", ["dest_prov", "cursor"])
    sequence = op.create_table(
        "filing_sequence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_cursor", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(sequence, [{"id": 1, "last_cursor": 0}])


def downgrade() -> None:
    """Drop the filing tables."""
    for table in ("filing_sequence", "filing_changes", "filings"):
        op.drop_table(table)
