"""Baseline of the gateway database: credentials, sessions, messages and nonces.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "credentials",
        sa.Column("fixmedins_code", sa.String(length=30), nullable=False),
        sa.Column("paasid", sa.String(length=40), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fixmedins_code", name=op.f("pk_credentials")),
        sa.UniqueConstraint("paasid", name=op.f("uq_credentials_paasid")),
    )
    op.create_table(
        "sessions",
        sa.Column("sign_no", sa.String(length=30), nullable=False),
        sa.Column("fixmedins_code", sa.String(length=30), nullable=False),
        sa.Column("opter_no", sa.String(length=20), nullable=False),
        sa.Column("signed_in_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("sign_no", name=op.f("pk_sessions")),
    )
    op.create_index(
        op.f("ix_sessions_fixmedins_code"), "sessions", ["fixmedins_code"], unique=False
    )
    op.create_table(
        "messages",
        sa.Column("fixmedins_code", sa.String(length=30), nullable=False),
        sa.Column("msgid", sa.String(length=30), nullable=False),
        sa.Column("infno", sa.String(length=6), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("request_body", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("reference", sa.String(length=30), nullable=False),
        sa.Column("reversed_by", sa.String(length=30), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN (1, 2, 3)", name=op.f("ck_messages_known_state")),
        sa.PrimaryKeyConstraint("fixmedins_code", "msgid", name=op.f("pk_messages")),
    )
    op.create_index(op.f("ix_messages_created_at"), "messages", ["created_at"], unique=False)
    op.create_table(
        "nonces",
        sa.Column("paasid", sa.String(length=40), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("paasid", "nonce", name=op.f("pk_nonces")),
    )
    op.create_index(op.f("ix_nonces_seen_at"), "nonces", ["seen_at"], unique=False)


def downgrade() -> None:
    """Drop the gateway's tables."""
    op.drop_table("nonces")
    op.drop_table("messages")
    op.drop_table("sessions")
    op.drop_table("credentials")
