"""Journeys over HTTP: the journeys that run (from the journeys file) with their counts per step, and a
profile's journey history. Creating and changing journeys through the API is not built yet: they come
from ``CRMHUB_JOURNEYS_FILE`` (docs/journeys.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from crmhub.core.web import OpsRead, ProfilesRead, Res, audit
from schemas.readmodels.journeys import HISTORY_CAP, history, step_counts
from services.notifier.journeys.catalog import load_journeys
from services.notifier.journeys.definition import Journey

router = APIRouter(tags=["journeys"])


def _summary(journey: Journey, counts: dict[str, dict[str, Decimal]]) -> dict[str, Any]:
    steps = [{"name": s.name, "counts": {k: str(v) for k, v in counts.get(s.name, {}).items()}} for s in journey.steps]
    return {
        "id": journey.id,
        "name": journey.name,
        "version": journey.version,
        "status": journey.status,
        "steps": steps,
    }


@router.get("/v1/journeys", summary="The journeys of the journeys file, with counts per step", dependencies=[OpsRead])
def list_journeys(res: Res) -> list[dict[str, Any]]:
    return [_summary(j, step_counts(res.redis, j.id)) for j in load_journeys(res.settings.journeys_file)]


@router.get("/v1/journeys/{journey_id}", summary="One journey with its counts per step", dependencies=[OpsRead])
def show_journey(res: Res, journey_id: str) -> dict[str, Any]:
    found = next((j for j in load_journeys(res.settings.journeys_file) if j.id == journey_id), None)
    if found is None:
        raise HTTPException(404, f"no journey {journey_id!r}")
    return _summary(found, step_counts(res.redis, journey_id))


@router.get(
    "/v1/profiles/{profile_id}/journeys",
    summary="What happened to a customer in journeys, newest first",
    dependencies=[ProfilesRead],
)
def profile_journeys(
    request: Request, res: Res, profile_id: str, limit: int = Query(50, ge=1, le=HISTORY_CAP)
) -> list[dict[str, Any]]:
    found = history(res.redis, profile_id, limit)
    audit(request, res, "journeys.read", profile_id, f"{len(found)} entries")
    return found
