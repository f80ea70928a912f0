"""The intake journal's seqs of the inputs folded (an input produced again after a broker loss folds once).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("folded_inputs", sa.Column("seq", sa.BigInteger, primary_key=True))


def downgrade() -> None:
    op.drop_table("folded_inputs")
