"""The Asia/Shanghai day of each ledger entry, for daily statistics.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from services.clearing.logic import day_of

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add event_day, fill it for the entries recorded before, then make it required."""
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_day", sa.String(length=10), nullable=True))
    connection = op.get_bind()
    entries = sa.table(
        "ledger_entries",
        sa.column("event_id", sa.String),
        sa.column("event_time", sa.DateTime(timezone=True)),
        sa.column("event_day", sa.String),
    )
    rows = connection.execute(sa.select(entries.c.event_id, entries.c.event_time)).all()
    for event_id, when in rows:
        moment = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        connection.execute(
            entries.update().where(entries.c.event_id == event_id).values(event_day=day_of(moment))
        )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.alter_column("event_day", existing_type=sa.String(length=10), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_event_day"), ["event_day"], unique=False
        )


def downgrade() -> None:
    """Drop event_day."""
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_event_day"))
        batch_op.drop_column("event_day")
