"""Policies, visits, fee lines, settlements, annual accumulators and the outbox.

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
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("delivered_at IS NULL"),
            sqlite_where=sa.text("delivered_at IS NULL"),
        )

    op.create_table(
        "person_years",
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("burden_fen", sa.BigInteger(), nullable=False),
        sa.Column("critical_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("assistance_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("account_balance_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "burden_fen >= 0 AND critical_paid_fen >= 0 AND assistance_paid_fen >= 0 "
            "AND account_balance_fen >= 0",
            name=op.f("ck_person_years_not_negative"),
        ),
        sa.PrimaryKeyConstraint("psn_no", "insuplc_admdvs", "year", name=op.f("pk_person_years")),
    )
    op.create_table(
        "policies",
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("insutype", sa.String(length=3), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("med_type", sa.String(length=2), nullable=False),
        sa.Column("psn_type", sa.String(length=10), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", "version", name=op.f("pk_policies")),
    )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index("ix_policies_area", ["insuplc_admdvs", "current"], unique=False)
        batch_op.create_index(
            "ix_policies_selection", ["insutype", "year", "med_type", "current"], unique=False
        )

    op.create_table(
        "policy_years",
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("fund_paid_fen", sa.BigInteger(), nullable=False),
        sa.Column("inpatient_settlements", sa.Integer(), nullable=False),
        sa.Column("annual_cap_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "fund_paid_fen >= 0 AND fund_paid_fen <= annual_cap_fen",
            name=op.f("ck_policy_years_within_annual_cap"),
        ),
        sa.CheckConstraint(
            "inpatient_settlements >= 0", name=op.f("ck_policy_years_count_not_negative")
        ),
        sa.PrimaryKeyConstraint(
            "psn_no", "insuplc_admdvs", "year", "policy_id", name=op.f("pk_policy_years")
        ),
    )
    op.create_table(
        "visits",
        sa.Column("mdtrt_id", sa.String(length=30), nullable=False),
        sa.Column("fixmedins_code", sa.String(length=30), nullable=False),
        sa.Column("ipt_otp_no", sa.String(length=30), nullable=False),
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("treatment_admdvs", sa.String(length=6), nullable=False),
        sa.Column("institution_level", sa.Integer(), nullable=False),
        sa.Column("insutype", sa.String(length=3), nullable=False),
        sa.Column("psn_type", sa.String(length=10), nullable=False),
        sa.Column("idet_types", sa.String(length=200), nullable=False),
        sa.Column("balc_fen", sa.BigInteger(), nullable=False),
        sa.Column("med_type", sa.String(length=2), nullable=False),
        sa.Column("begin_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("diagnoses", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("filing_id", sa.String(length=21), nullable=False),
        sa.Column("setl_id", sa.String(length=30), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("mdtrt_id", name=op.f("pk_visits")),
        sa.UniqueConstraint("request_id", name=op.f("uq_visits_request_id")),
    )
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.create_index("ix_visits_psn_no", ["psn_no"], unique=False)
        batch_op.create_index(
            "uq_visits_open_ipt_otp_no",
            ["fixmedins_code", "ipt_otp_no"],
            unique=True,
            postgresql_where=sa.text("status != 3"),
            sqlite_where=sa.text("status != 3"),
        )

    op.create_table(
        "fee_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mdtrt_id", sa.String(length=30), nullable=False),
        sa.Column("feedetl_sn", sa.String(length=30), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("classified", sa.LargeBinary(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("fulamt_ownpay_fen", sa.BigInteger(), nullable=False),
        sa.Column("overlmt_fen", sa.BigInteger(), nullable=False),
        sa.Column("preselfpay_fen", sa.BigInteger(), nullable=False),
        sa.Column("inscp_fen", sa.BigInteger(), nullable=False),
        sa.Column("catalogue_version", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount_fen = fulamt_ownpay_fen + overlmt_fen + preselfpay_fen + inscp_fen",
            name=op.f("ck_fee_lines_parts_add_up"),
        ),
        sa.CheckConstraint(
            "fulamt_ownpay_fen >= 0 AND overlmt_fen >= 0 AND preselfpay_fen >= 0 "
            "AND inscp_fen >= 0",
            name=op.f("ck_fee_lines_parts_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["mdtrt_id"], ["visits.mdtrt_id"], name=op.f("fk_fee_lines_mdtrt_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fee_lines")),
    )
    with op.batch_alter_table("fee_lines", schema=None) as batch_op:
        batch_op.create_index(
            "uq_fee_lines_live_sn",
            ["mdtrt_id", "feedetl_sn"],
            unique=True,
            postgresql_where=sa.text("status = 1"),
            sqlite_where=sa.text("status = 1"),
        )

    op.create_table(
        "settlements",
        sa.Column("setl_id", sa.String(length=30), nullable=False),
        sa.Column("mdtrt_id", sa.String(length=30), nullable=False),
        sa.Column("psn_no", sa.String(length=30), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(length=6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=40), nullable=False),
        sa.Column("inpatient", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("fulamt_ownpay_fen", sa.BigInteger(), nullable=False),
        sa.Column("overlmt_selfpay_fen", sa.BigInteger(), nullable=False),
        sa.Column("preselfpay_fen", sa.BigInteger(), nullable=False),
        sa.Column("inscp_fen", sa.BigInteger(), nullable=False),
        sa.Column("hifp_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("critical_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("maf_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_part_fen", sa.BigInteger(), nullable=False),
        sa.Column("acct_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_cash_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("burden_fen", sa.BigInteger(), nullable=False),
        sa.Column("settlement", sa.LargeBinary(), nullable=False),
        sa.Column("cancellation", sa.LargeBinary(), nullable=True),
        sa.Column("explanation", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_request_id", sa.String(length=64), nullable=True),
        sa.Column("cancel_request_hash", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "fund_pay_sumamt_fen = hifp_pay_fen + critical_pay_fen + maf_pay_fen",
            name=op.f("ck_settlements_funds_add_up"),
        ),
        sa.CheckConstraint(
            "hifp_pay_fen >= 0 AND critical_pay_fen >= 0 AND maf_pay_fen >= 0 "
            "AND acct_pay_fen >= 0 AND psn_cash_pay_fen >= 0",
            name=op.f("ck_settlements_payments_not_negative"),
        ),
        sa.CheckConstraint(
            "medfee_sumamt_fen = fulamt_ownpay_fen + overlmt_selfpay_fen + preselfpay_fen "
            "+ inscp_fen",
            name=op.f("ck_settlements_line_sums_add_up"),
        ),
        sa.CheckConstraint(
            "medfee_sumamt_fen = fund_pay_sumamt_fen + psn_part_fen",
            name=op.f("ck_settlements_shares_add_up"),
        ),
        sa.CheckConstraint(
            "psn_part_fen = acct_pay_fen + psn_cash_pay_fen",
            name=op.f("ck_settlements_personal_adds_up"),
        ),
        sa.ForeignKeyConstraint(
            ["mdtrt_id"], ["visits.mdtrt_id"], name=op.f("fk_settlements_mdtrt_id_visits")
        ),
        sa.PrimaryKeyConstraint("setl_id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("cancel_request_id", name=op.f("uq_settlements_cancel_request_id")),
        sa.UniqueConstraint("request_id", name=op.f("uq_settlements_request_id")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index("ix_settlements_psn_year", ["psn_no", "year"], unique=False)
        batch_op.create_index(
            "uq_settlements_live_visit",
            ["mdtrt_id"],
            unique=True,
            postgresql_where=sa.text("status = 1"),
            sqlite_where=sa.text("status = 1"),
        )


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_settlements_live_visit",
            postgresql_where=sa.text("status = 1"),
            sqlite_where=sa.text("status = 1"),
        )
        batch_op.drop_index("ix_settlements_psn_year")

    op.drop_table("settlements")
    with op.batch_alter_table("fee_lines", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_fee_lines_live_sn",
            postgresql_where=sa.text("status = 1"),
            sqlite_where=sa.text("status = 1"),
        )

    op.drop_table("fee_lines")
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_visits_open_ipt_otp_no",
            postgresql_where=sa.text("status != 3"),
            sqlite_where=sa.text("status != 3"),
        )
        batch_op.drop_index("ix_visits_psn_no")

    op.drop_table("visits")
    op.drop_table("policy_years")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index("ix_policies_selection")
        batch_op.drop_index("ix_policies_area")

    op.drop_table("policies")
    op.drop_table("person_years")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending",
            postgresql_where=sa.text("delivered_at IS NULL"),
            sqlite_where=sa.text("delivered_at IS NULL"),
        )

    op.drop_table("outbox")
