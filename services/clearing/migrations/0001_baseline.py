"""Baseline of the clearing database: the revision every later one builds on.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to create yet; the clearing tables arrive in their own revisions."""


def downgrade() -> None:
    """Nothing to drop."""
