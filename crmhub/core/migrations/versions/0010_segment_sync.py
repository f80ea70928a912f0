"""A segment's audience sync setting (crmhub.core.audience), for segments made through the API.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segment_definitions") as batch:
        batch.add_column(sa.Column("sync", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segment_definitions") as batch:
        batch.drop_column("sync")
