"""The alert log over HTTP: list alerts with filters (newest first) and acknowledge one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from crmhub.core.web import ProfilesRead, Res, audit
from schemas.outputs import AlertKind
from services.notifier.alertlog import AlertLog, Status

router = APIRouter(tags=["alerts"], dependencies=[ProfilesRead])  # summaries and details are personal data


@router.get("/v1/alerts", summary="Alerts, newest first, with their status and deliveries")
def list_alerts(
    request: Request,
    res: Res,
    limit: int = Query(50, ge=1, le=1000),
    kind: AlertKind | None = None,
    status: Status | None = None,
    customer: str | None = Query(None, description="A profile id."),
) -> list[dict[str, Any]]:
    found = AlertLog(res.redis).query(kind=kind, status=status, customer=customer, limit=limit)
    audit(request, res, "alerts.read", customer, f"{len(found)} alerts")
    return found


@router.post("/v1/alerts/{alert_id}/ack", summary="Acknowledge an alert (idempotent: the first time stays)")
def acknowledge(request: Request, res: Res, alert_id: str) -> dict[str, Any]:
    record = AlertLog(res.redis).acknowledge(alert_id, datetime.now(UTC).isoformat())
    if record is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    audit(request, res, "alerts.read", record.get("profile_id"), f"acknowledged {alert_id}")
    return record
