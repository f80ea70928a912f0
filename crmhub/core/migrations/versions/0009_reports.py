"""Report roll-ups (sales, cohorts, retention, complaint responses) and each profile's currency and net
revenue in an indexed column (top customers); the columns are filled from the stored profiles.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHUNK = 1000


def upgrade() -> None:
    op.add_column("profiles", sa.Column("currency", sa.String(3), nullable=True))
    op.add_column("profiles", sa.Column("net_units", sa.BigInteger, nullable=True))
    op.create_index("ix_profiles_net", "profiles", ["currency", "net_units"])
    _fill_net_revenue()
    op.create_table(
        "report_sales",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("dimension", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("gross_units", sa.BigInteger, nullable=False),
        sa.Column("refunded_units", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "report_cohorts",
        sa.Column("cohort", sa.String(7), primary_key=True),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("repeaters", sa.Integer, nullable=False),
    )
    op.create_table(
        "report_retention",
        sa.Column("cohort", sa.String(7), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("customers", sa.Integer, nullable=False),
    )
    op.create_table(
        "report_responses",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("seconds", sa.Integer, primary_key=True),
        sa.Column("complaints", sa.Integer, nullable=False),
    )


def _fill_net_revenue() -> None:
    """The new columns of the profiles stored already, from their documents, a chunk at a time."""
    conn = op.get_bind()
    table = sa.table("profiles", sa.column("profile_id"), sa.column("doc"), sa.column("currency"),
                     sa.column("net_units"))  # fmt: skip
    last = ""
    while True:
        query = sa.select(table.c.profile_id, table.c.doc).where(table.c.profile_id > last)
        rows = conn.execute(query.order_by(table.c.profile_id).limit(CHUNK)).all()
        if not rows:
            return
        for pid, doc in rows:
            stored = json.loads(doc)
            if stored.get("currency"):
                net = int(Decimal(str(stored.get("net_revenue", "0"))) * 10_000)
                conn.execute(
                    table.update().where(table.c.profile_id == pid).values(currency=stored["currency"], net_units=net)
                )
        last = rows[-1][0]


def downgrade() -> None:
    for name in ("report_responses", "report_retention", "report_cohorts", "report_sales"):
        op.drop_table(name)
    op.drop_index("ix_profiles_net", "profiles")
    op.drop_column("profiles", "net_units")
    op.drop_column("profiles", "currency")
