"""The ledger of settlements and cancellations.

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
    """Apply this revision."""
    op.create_table(
        "ledger_entries",
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("setl_id", sa.String(length=30), nullable=False),
        sa.Column("mdtrt_id", sa.String(length=30), nullable=False),
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("fixmedins_code", sa.String(length=30), nullable=False),
        sa.Column("treatment_admdvs", sa.String(length=6), nullable=False),
        sa.Column("treatment_prov", sa.String(length=6), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("insured_prov", sa.String(length=6), nullable=False),
        sa.Column("insutype", sa.String(length=3), nullable=False),
        sa.Column("med_type", sa.String(length=2), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("hifp_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("critical_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("maf_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("acct_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_cash_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "fund_pay_sumamt_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen",
            name=op.f("ck_ledger_entries_funds_add_up"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_institution_time", ["fixmedins_code", "event_time"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_entries_period_provinces",
            ["period", "insured_prov", "treatment_prov"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_ledger_entries_setl_id"), ["setl_id"], unique=False)


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_setl_id"))
        batch_op.drop_index("ix_ledger_entries_period_provinces")
        batch_op.drop_index("ix_ledger_entries_institution_time")

    op.drop_table("ledger_entries")
