"""Reports over HTTP (``/v1/reports/...``): sales by channel, store or payment method per period, cohorts,
top customers, complaint first-response times against the SLA, journey funnels. Every figure is read from
roll-ups the profile service keeps with the profiles (:mod:`services.profile.reports`) or from the
journeys' own counters; no request scans profiles. What each figure means: ``docs/reports.md``."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import Connection, func, select

from crmhub.core.setting_values import parse_complaint_sla
from crmhub.core.web import OpsRead, ProfilesRead, Res, audit
from schemas.readmodels.journeys import step_counts
from schemas.tables import profiles, report_cohorts, report_responses, report_retention, report_sales
from services.notifier.journeys.catalog import current_journeys
from services.notifier.journeys.store import JourneyStore
from services.profile.reports import DIMENSIONS, UNITS

router = APIRouter(tags=["reports"])
MAX_DAYS = 3660
MAX_TOP = 1000


def today() -> date:
    return datetime.now(UTC).date()


def money(units: int) -> str:
    return str(Decimal(units) / UNITS)


def period_start(day: date, period: str) -> date:
    if period == "week":
        return day - timedelta(days=day.weekday())  # Monday
    if period == "month":
        return day.replace(day=1)
    return day


def parse_day(name: str, value: str | None, default: date) -> date:
    if value is None:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise HTTPException(400, f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


@router.get(
    "/v1/reports/sales",
    summary="Orders and revenue by channel, store or payment method per period",
    dependencies=[OpsRead],
)
def sales(
    res: Res,
    by: str = Query("channel", description="channel, store or payment_method"),
    period: str = Query("day", description="day, week (from Monday) or month"),
    start: str | None = Query(None, alias="from", description="First day (YYYY-MM-DD), by order date."),
    end: str | None = Query(None, alias="to", description="Last day, included (default: today)."),
) -> dict[str, Any]:
    choice("by", by, DIMENSIONS)
    choice("period", period, ("day", "week", "month"))
    last = parse_day("to", end, today())
    first = parse_day("from", start, last - timedelta(days=30))
    if first > last or (last - first).days > MAX_DAYS:
        raise HTTPException(400, f"from: must be on or before 'to' and at most {MAX_DAYS} days before it")
    rs = report_sales
    query = select(rs.c.day, rs.c.key, rs.c.currency, rs.c.orders, rs.c.gross_units, rs.c.refunded_units).where(
        rs.c.dimension == by, rs.c.day >= first, rs.c.day <= last
    )
    totals: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    with res.engine.connect() as conn:
        for day, key, currency, orders, gross, refunded in conn.execute(query):
            row = totals[(period_start(day, period), key, currency)]
            row[0], row[1], row[2] = row[0] + orders, row[1] + gross, row[2] + refunded
    rows = [
        {"period": p.isoformat(), by: key, "currency": cur, "orders": o, "gross": money(g), "refunded": money(r),
         "net": money(g - r)}
        for (p, key, cur), (o, g, r) in sorted(totals.items())
    ]  # fmt: skip
    return {"by": by, "period": period, "from": first.isoformat(), "to": last.isoformat(), "rows": rows}


@router.get(
    "/v1/reports/cohorts",
    summary="Customers by first-order month: repeat purchase and retention",
    dependencies=[OpsRead],
)
def cohorts(res: Res) -> dict[str, Any]:
    with res.engine.connect() as conn:
        sizes = conn.execute(select(report_cohorts).order_by(report_cohorts.c.cohort)).all()
        active: dict[str, dict[str, int]] = defaultdict(dict)
        for cohort, month, customers in conn.execute(select(report_retention)):
            active[cohort][month] = customers
    return {"cohorts": [_cohort(cohort, n, r, active[cohort]) for cohort, n, r in sizes if n > 0]}


def _cohort(cohort: str, customers: int, repeaters: int, active: dict[str, int]) -> dict[str, Any]:
    start = _month_number(cohort)
    retention = {
        str(_month_number(month) - start): {"month": month, "customers": n, "rate": _rate(n, customers)}
        for month, n in sorted(active.items())
        if n > 0
    }
    return {
        "cohort": cohort,
        "customers": customers,
        "repeat_customers": repeaters,
        "repeat_rate": _rate(repeaters, customers),
        "retention": retention,
    }


def _month_number(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@router.get(
    "/v1/reports/top-customers",
    summary="The customers with the highest net revenue, per currency",
    dependencies=[ProfilesRead],
)
def top_customers(
    request: Request,
    res: Res,
    limit: int = Query(10, ge=1, le=MAX_TOP),
    currency: str | None = Query(None, min_length=3, max_length=3, description="Only this currency."),
) -> dict[str, Any]:
    p = profiles.c
    with res.engine.connect() as conn:
        currencies = [currency.upper()] if currency else _currencies(conn)
        ranked = {
            cur: [
                {"profile_id": pid, "net_revenue": money(net)}
                for pid, net in conn.execute(
                    select(p.profile_id, p.net_units)
                    .where(p.currency == cur, p.net_units > 0)
                    .order_by(p.net_units.desc(), p.profile_id)
                    .limit(limit)
                )
            ]
            for cur in currencies
        }
    audit(request, res, "reports.top", detail=f"top {limit} customers")
    return {"limit": limit, "by_currency": ranked}


def _currencies(conn: Connection) -> list[str]:
    return [
        str(c) for c in conn.execute(select(profiles.c.currency).distinct().where(profiles.c.currency.is_not(None)))
    ]


@router.get(
    "/v1/reports/complaints",
    summary="Complaint first-response times (p50, p90) against the SLA",
    dependencies=[OpsRead],
)
def complaints(
    res: Res,
    start: str | None = Query(None, alias="from", description="First day complaints were made (YYYY-MM-DD)."),
    end: str | None = Query(None, alias="to", description="Last day, included (default: today)."),
) -> dict[str, Any]:
    last = parse_day("to", end, today())
    first = parse_day("from", start, date(1970, 1, 1))
    rr = report_responses
    query = (
        select(rr.c.seconds, func.sum(rr.c.complaints))
        .where(rr.c.day >= first, rr.c.day <= last)
        .group_by(rr.c.seconds)
        .order_by(rr.c.seconds)
    )
    with res.engine.connect() as conn:
        histogram = [(int(s), int(n)) for s, n in conn.execute(query) if n]
    return response_figures(histogram, parse_complaint_sla(res.settings.complaint_sla))


def response_figures(histogram: list[tuple[int, int]], sla: dict[str, float]) -> dict[str, Any]:
    """The answered count, the p50 and p90 seconds to the first response (the nearest-rank percentile:
    the smallest time at least that share of complaints was answered within) and, per SLA priority, the
    share answered within it, from (whole seconds, complaints) in ascending order."""
    answered = sum(n for _, n in histogram)
    return {
        "answered": answered,
        "p50_s": _percentile(histogram, answered, 50),
        "p90_s": _percentile(histogram, answered, 90),
        "sla_s": sla,
        "within_sla": {p: _rate(sum(n for s, n in histogram if s <= limit), answered) for p, limit in sla.items()},
    }


def _percentile(histogram: list[tuple[int, int]], total: int, pct: int) -> int | None:
    rank, seen = -(-total * pct // 100), 0  # ceil(total * pct / 100)
    for seconds, n in histogram:
        seen += n
        if seen >= rank:
            return seconds
    return None


@router.get(
    "/v1/reports/journeys",
    summary="Journey funnels: entered, sent, converted and revenue per step",
    dependencies=[OpsRead],
)
def journeys(res: Res) -> dict[str, Any]:
    found, _file = current_journeys(res.settings, JourneyStore(res.engine))
    return {"journeys": [journey_funnel(j.id, [s.name for s in j.steps], step_counts(res.redis, j.id)) for j in found]}


def journey_funnel(journey_id: str, steps: list[str], counts: dict[str, dict[str, Decimal]]) -> dict[str, Any]:
    """The steps in order with how many entered, were sent, converted; the journey's conversion rate is
    its conversions over the entries of its first step."""
    funnel = [
        {"step": s, **{k: str(counts.get(s, {}).get(k, 0)) for k in ("entered", "sent", "converted", "revenue")}}
        for s in steps
    ]
    entered = sum((counts.get(s, {}).get("entered", Decimal(0)) for s in steps[:1]), Decimal(0))
    converted = sum((c.get("converted", Decimal(0)) for c in counts.values()), Decimal(0))
    revenue = sum((c.get("revenue", Decimal(0)) for c in counts.values()), Decimal(0))
    return {
        "id": journey_id,
        "entered": str(entered),
        "converted": str(converted),
        "conversion_rate": _rate(int(converted), int(entered)),
        "revenue": str(revenue),
        "steps": funnel,
    }
