"""Monthly clearing: periods, treatment confirmations, statements, disputes; cleared_period.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "clearing_periods",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("statement_hash", sa.String(length=64), nullable=False),
        sa.Column("run_request_id", sa.String(length=64), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN (1, 2, 3)", name=op.f("ck_clearing_periods_known_state")),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_clearing_periods")),
    )
    op.create_table(
        "disputes",
        sa.Column("setl_id", sa.String(length=30), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN (1, 2)", name=op.f("ck_disputes_known_state")),
        sa.PrimaryKeyConstraint("setl_id", name=op.f("pk_disputes")),
    )
    op.create_table(
        "statements",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("hifp_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("critical_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("maf_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("acct_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("clearing_fen", sa.BigInteger(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "clearing_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen",
            name=op.f("ck_statements_amount_adds_up"),
        ),
        sa.PrimaryKeyConstraint(
            "period", "insured_prov", "treatment_prov", name=op.f("pk_statements")
        ),
    )
    op.create_table(
        "treatment_confirmations",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("province", sa.String(length=6), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("period", "province", name=op.f("pk_treatment_confirmations")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cleared_period", sa.String(length=7), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_cleared_period"), ["cleared_period"], unique=False
        )


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_cleared_period"))
        batch_op.drop_column("cleared_period")

    op.drop_table("treatment_confirmations")
    op.drop_table("statements")
    op.drop_table("disputes")
    op.drop_table("clearing_periods")
