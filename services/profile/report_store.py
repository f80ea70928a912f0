"""Adding a batch's report deltas (:mod:`services.profile.reports`) to the roll-up tables, inside the
profile store's save transaction: the figures move with the profiles and the offsets, exactly once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table

from crmhub.core.sql import add_up
from schemas.tables import report_cohorts, report_responses, report_retention, report_sales
from services.profile.reports import ReportDeltas


def add_deltas(conn: Connection, deltas: ReportDeltas) -> None:
    sales = [
        {"day": day, "dimension": dim, "key": key[:200], "currency": cur, "orders": o, "gross_units": g,
         "refunded_units": r}
        for (day, dim, key, cur), (o, g, r) in sorted(deltas.sales.items())
    ]  # fmt: skip
    cohorts = [{"cohort": c, "customers": n, "repeaters": r} for c, (n, r) in sorted(deltas.cohorts.items())]
    retention = [{"cohort": c, "month": m, "customers": n} for (c, m), n in sorted(deltas.retention.items())]
    responses = [{"day": d, "seconds": s, "complaints": n} for (d, s), n in sorted(deltas.responses.items())]
    _add(conn, report_sales, sales, ["day", "dimension", "key", "currency"])
    _add(conn, report_cohorts, cohorts, ["cohort"])
    _add(conn, report_retention, retention, ["cohort", "month"])
    _add(conn, report_responses, responses, ["day", "seconds"])


def _add(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if rows:  # sorted by key: concurrent instances lock rows in the same order (PostgreSQL), no deadlock
        conn.execute(add_up(conn.engine, table, keys), rows)
