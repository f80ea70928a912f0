"""Alert reads: the most recent alerts, newest first."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query

from crmhub.stats import RECENT_ALERTS
from crmhub.web import Authorized, Res

router = APIRouter(tags=["alerts"], dependencies=[Authorized])


@router.get("/v1/alerts", summary="Recent alerts, newest first")
def recent_alerts(res: Res, limit: int = Query(50, ge=1, le=200), kind: str | None = None) -> list[dict[str, Any]]:
    alerts = [orjson.loads(doc) for doc in res.redis.lrange(RECENT_ALERTS, 0, -1)]
    return [a for a in alerts if kind is None or a["kind"] == kind][:limit]
