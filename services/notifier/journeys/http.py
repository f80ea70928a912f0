"""Journeys over HTTP: the journeys in force (the journeys file, read-only, and the ones made here, kept
in SQL with every version) with their counts per step; create, change, pause, resume and delete; every
saved version; and a profile's journey history. The notifier picks up a change within
``CRMHUB_SEGMENT_TICK_S`` (docs/journeys.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from crmhub.core.web import OpsRead, ProfilesRead, Res, Resources, SegmentsWrite, audit
from schemas.readmodels.journeys import HISTORY_CAP, history, step_counts
from services.notifier.journeys.catalog import JourneyError, current_journeys, parse_journey
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.store import JourneyStore

router = APIRouter(tags=["journeys"])
JourneyDoc = Body(
    description="A journey as in the journeys file (docs/journeys.md); its version is set by the hub",
    examples=[{"id": "win-back", "trigger": {"segment": "lapsed", "on": "entered"}, "steps": []}],
)


def _summary(journey: Journey, counts: dict[str, dict[str, Decimal]], from_file: bool) -> dict[str, Any]:
    steps = [{"name": s.name, "counts": {k: str(v) for k, v in counts.get(s.name, {}).items()}} for s in journey.steps]
    return {
        "id": journey.id,
        "name": journey.name,
        "version": journey.version,
        "status": journey.status,
        "from_file": from_file,
        "steps": steps,
    }


def _in_force(res: Resources) -> tuple[dict[str, Journey], set[str]]:
    journeys, from_file = current_journeys(res.settings, JourneyStore(res.engine))
    return {j.id: j for j in journeys}, from_file


def _show(res: Resources, journey_id: str) -> dict[str, Any]:
    journeys, from_file = _in_force(res)
    if journey_id not in journeys:
        raise HTTPException(404, f"no journey {journey_id!r}")
    return _summary(journeys[journey_id], step_counts(res.redis, journey_id), journey_id in from_file)


def _save(request: Request, res: Resources, doc: dict[str, Any], journey_id: str | None) -> dict[str, Any]:
    """Validate and save ``doc`` as the next version (``journey_id``: it changes that journey; None: new)."""
    given = doc.get("id") if isinstance(doc, dict) else None
    target = journey_id or given
    if not isinstance(target, str) or (journey_id is not None and given not in (None, journey_id)):
        raise HTTPException(400, "the journey's id is missing, or differs from the one in the path")
    journeys, from_file = _in_force(res)
    if target in from_file:
        raise HTTPException(409, f"journey {target!r} is defined in the journeys file; change it there")
    if journey_id is None and target in journeys:
        raise HTTPException(409, f"journey {target!r} exists; PUT /v1/journeys/{target} changes it")
    store = JourneyStore(res.engine)
    try:
        journey = parse_journey({**doc, "id": target, "version": store.next_version(target)})
    except JourneyError as exc:
        raise HTTPException(400, str(exc)) from exc
    store.save(target, journey.model_dump(mode="json"), request.state.principal.token_id, datetime.now(UTC))
    audit(request, res, "journey.save", None, f"{target} v{journey.version} {journey.status}")
    return _summary(journey, step_counts(res.redis, target), False)


def _set_status(request: Request, res: Resources, journey_id: str, status: str) -> dict[str, Any]:
    journeys, from_file = _in_force(res)
    if journey_id not in journeys or journey_id in from_file:
        raise HTTPException(
            404 if journey_id not in journeys else 409, f"no journey {journey_id!r} made through the API"
        )
    doc = journeys[journey_id].model_dump(mode="json")
    return _save(request, res, {**doc, "status": status}, journey_id)


def _remove(request: Request, res: Resources, journey_id: str) -> None:
    _, from_file = _in_force(res)
    if journey_id in from_file:
        raise HTTPException(409, f"journey {journey_id!r} is defined in the journeys file; remove it there")
    if not JourneyStore(res.engine).delete(journey_id, request.state.principal.token_id, datetime.now(UTC)):
        raise HTTPException(404, f"no journey {journey_id!r} made through the API")
    audit(request, res, "journey.delete", None, journey_id)


@router.get("/v1/journeys", summary="The journeys in force, with counts per step", dependencies=[OpsRead])
def list_journeys(res: Res) -> list[dict[str, Any]]:
    journeys, from_file = _in_force(res)
    return [_summary(j, step_counts(res.redis, j.id), j.id in from_file) for j in journeys.values()]


@router.get("/v1/journeys/{journey_id}", summary="One journey with its counts per step", dependencies=[OpsRead])
def show_journey(res: Res, journey_id: str) -> dict[str, Any]:
    return _show(res, journey_id)


@router.post("/v1/journeys", status_code=201, summary="Create a journey", dependencies=[SegmentsWrite])
async def create_journey(request: Request, res: Res, doc: dict[str, Any] = JourneyDoc) -> dict[str, Any]:
    return await run_in_threadpool(_save, request, res, doc, None)


@router.put("/v1/journeys/{journey_id}", summary="Change a journey (a new version)", dependencies=[SegmentsWrite])
async def put_journey(request: Request, res: Res, journey_id: str, doc: dict[str, Any] = JourneyDoc) -> dict[str, Any]:
    return await run_in_threadpool(_save, request, res, doc, journey_id)


@router.post("/v1/journeys/{journey_id}/pause", summary="Pause a journey (waits hold)", dependencies=[SegmentsWrite])
async def pause_journey(request: Request, res: Res, journey_id: str) -> dict[str, Any]:
    return await run_in_threadpool(_set_status, request, res, journey_id, "paused")


@router.post("/v1/journeys/{journey_id}/resume", summary="Run a paused journey again", dependencies=[SegmentsWrite])
async def resume_journey(request: Request, res: Res, journey_id: str) -> dict[str, Any]:
    return await run_in_threadpool(_set_status, request, res, journey_id, "active")


@router.delete("/v1/journeys/{journey_id}", status_code=204, summary="Delete a journey", dependencies=[SegmentsWrite])
async def delete_journey(request: Request, res: Res, journey_id: str) -> Response:
    await run_in_threadpool(_remove, request, res, journey_id)
    return Response(status_code=204)


@router.get("/v1/journeys/{journey_id}/versions", summary="Every saved version, newest first", dependencies=[OpsRead])
def journey_versions(res: Res, journey_id: str) -> list[dict[str, Any]]:
    saved = JourneyStore(res.engine).versions(journey_id)
    if not saved:
        raise HTTPException(404, f"no journey {journey_id!r} made through the API")
    return [
        {
            "version": v.version,
            "deleted": v.doc is None,
            "saved_at": v.saved_at,
            "saved_by": v.saved_by,
            "journey": v.doc,
        }
        for v in saved
    ]


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
