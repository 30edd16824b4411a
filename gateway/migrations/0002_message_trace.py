"""Messages keep their trace id and the inf_refmsgid of their answer, to find a message's trace.

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
    """Add trace_id and inf_refmsgid; messages stored before have neither."""
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trace_id", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("inf_refmsgid", sa.String(length=30), nullable=False, server_default="")
        )
        batch_op.create_index(
            batch_op.f("ix_messages_inf_refmsgid"), ["inf_refmsgid"], unique=False
        )


def downgrade() -> None:
    """Undo this revision."""
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_inf_refmsgid"))
        batch_op.drop_column("inf_refmsgid")
        batch_op.drop_column("trace_id")
