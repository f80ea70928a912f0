"""The first schema: profiles (a JSON document each), identifiers and consumer offsets.

Exactly what ``metadata.create_all`` made before migrations existed: a store created that way is stamped
with this revision instead of being created again.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profiles",
        sa.Column("profile_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )
    op.create_table(
        "identifiers",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(255), primary_key=True),
        sa.Column("profile_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_identifiers_profile", "identifiers", ["profile_id"])
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(128), primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("incarnation", sa.String(64), nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("consumer_offsets")
    op.drop_index("ix_identifiers_profile", table_name="identifiers")
    op.drop_table("identifiers")
    op.drop_table("profiles")
