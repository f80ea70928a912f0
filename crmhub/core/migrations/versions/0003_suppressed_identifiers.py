"""The identifiers of erased profiles (the suppression list), so suppression outlives a Redis loss.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressed_identifiers",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suppressed_identifiers")
