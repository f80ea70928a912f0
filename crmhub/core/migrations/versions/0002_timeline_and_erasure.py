"""Each profile's recent events (the timeline) and the ids of erased profiles.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_events",
        sa.Column("profile_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )
    op.create_index("ix_profile_events_time", "profile_events", ["profile_id", "occurred_at"])
    op.create_table(
        "erased_profiles",
        sa.Column("profile_id", sa.String(64), primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erased_profiles")
    op.drop_index("ix_profile_events_time", table_name="profile_events")
    op.drop_table("profile_events")
