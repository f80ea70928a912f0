"""Segments over HTTP: definitions (the file's, read-only, and the API's, made here), sizes, members (a
page at a time, or all of them with their consented contact points as a streamed export), size history,
and trying a condition against a profile before saving it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from crmhub.core.audience import AudienceSync, current_syncs, sync_json
from crmhub.core.conditions.language import SegmentDef, SegmentError, compile_segment
from crmhub.core.routing import WebhookSink, load_routes
from crmhub.core.web import OpsRead, ProfilesRead, Res, Resources, SegmentsWrite, audit
from schemas.readmodels.profiles import ProfileCache, ProfileReader, current_profile
from schemas.readmodels.segments import members_key
from services.segmenter import membership
from services.segmenter.definitions import current, try_condition
from services.segmenter.export import MEDIA_TYPES, Format, export_lines
from services.segmenter.store import SegmentStore

router = APIRouter(tags=["segments"])
MAX_CONDITION = 4000  # characters: a condition is compiled and evaluated on every profile change


class SegmentBody(BaseModel):
    condition: str = Field(
        max_length=MAX_CONDITION, description="A rule-engine expression over the profile fields (docs/segments.md)."
    )
    description: str = Field("", max_length=1000)
    sync: AudienceSync | None = Field(
        None, description="Send membership changes in batches to a webhook sink of the routes file (docs/segments.md)."
    )


class NewSegment(SegmentBody):
    name: str = Field(max_length=64, description="1-64 characters of a-z, 0-9, _ and -.")


class ConditionTest(BaseModel):
    condition: str = Field(max_length=MAX_CONDITION)
    profile_id: str = Field(max_length=64)


def segment_store(res: Resources) -> SegmentStore:
    return SegmentStore(res.engine)


def definitions(res: Resources) -> tuple[dict[str, SegmentDef], set[str]]:
    """Every definition in force by name, and the names the segment file defines."""
    defs, from_file = current(res.settings.segments_file, segment_store(res))
    return {d.name: d for d in defs}, from_file


def describe(d: SegmentDef, size: int, from_file: bool, sync: AudienceSync | None) -> dict[str, Any]:
    return {
        "name": d.name,
        "description": d.description,
        "condition": d.condition,
        "source": "file" if from_file else "api",
        "fields": sorted(d.fields),
        "clock_dependent": bool(d.clock),
        "size": size,
        "sync": None if sync is None else sync.model_dump(mode="json"),
    }


def list_all(res: Resources) -> list[dict[str, Any]]:
    defs, from_file = definitions(res)
    sizes, syncs = membership.sizes(res.redis, list(defs)), syncs_of(res)
    return [describe(d, sizes[name], name in from_file, syncs.get(name)) for name, d in defs.items()]


def show(res: Resources, name: str) -> dict[str, Any]:
    defs, from_file = definitions(res)
    if name not in defs:
        raise HTTPException(404, f"no segment {name!r}")
    doc = describe(defs[name], membership.sizes(res.redis, [name])[name], name in from_file, syncs_of(res).get(name))
    return {**doc, "backfill": membership.backfill_progress(res.redis, name)}


def save(res: Resources, name: str, body: SegmentBody, create: bool) -> dict[str, Any]:
    defs, from_file = definitions(res)
    if name in from_file:
        raise HTTPException(409, f"segment {name!r} is defined in the segment file; change it there")
    if create and name in defs:
        raise HTTPException(409, f"segment {name!r} exists; PUT /v1/segments/{name} changes it")
    try:
        d = compile_segment(name, body.condition, body.description)
    except SegmentError as exc:
        raise HTTPException(400, str(exc)) from exc
    if body.sync is not None:
        check_webhook(res, name, body.sync)
    segment_store(res).put(d.name, d.description, d.condition, datetime.now(UTC), sync_json(body.sync))
    return describe(d, membership.sizes(res.redis, [name])[name], False, body.sync)


def syncs_of(res: Resources) -> dict[str, AudienceSync]:
    return current_syncs(res.settings.segments_file, res.engine)


def check_webhook(res: Resources, name: str, sync: AudienceSync) -> None:
    """A sync must name a webhook sink of the routes file (400 otherwise, naming the ones there are)."""
    sinks = load_routes(res.settings.routes_file).sinks
    if not isinstance(sinks.get(sync.webhook), WebhookSink):
        webhooks = ", ".join(sorted(n for n, s in sinks.items() if isinstance(s, WebhookSink))) or "none"
        raise HTTPException(
            400,
            f"segment {name!r}: sync.webhook {sync.webhook!r} is no webhook sink of the routes file"
            f" (webhooks: {webhooks})",
        )


def remove(res: Resources, name: str) -> None:
    _, from_file = definitions(res)
    if name in from_file:
        raise HTTPException(409, f"segment {name!r} is defined in the segment file; remove it there")
    if not segment_store(res).delete(name):
        raise HTTPException(404, f"no segment {name!r} made through the API")


@router.get("/v1/segments", summary="Segment definitions with their current sizes", dependencies=[OpsRead])
async def list_segments(res: Res) -> list[dict[str, Any]]:
    return await run_in_threadpool(list_all, res)


@router.get("/v1/segments/{name}", summary="A segment: definition, size, backfill progress", dependencies=[OpsRead])
async def get_segment(name: str, res: Res) -> dict[str, Any]:
    return await run_in_threadpool(show, res, name)


@router.post(
    "/v1/segments",
    status_code=201,
    summary="Define a segment (evaluated over every profile)",
    dependencies=[SegmentsWrite],
)
async def create_segment(body: NewSegment, res: Res) -> dict[str, Any]:
    return await run_in_threadpool(save, res, body.name, body, True)


@router.put(
    "/v1/segments/{name}",
    summary="Define or change a segment (evaluated over every profile)",
    dependencies=[SegmentsWrite],
)
async def put_segment(name: str, body: SegmentBody, res: Res) -> dict[str, Any]:
    return await run_in_threadpool(save, res, name, body, False)


@router.delete(
    "/v1/segments/{name}", status_code=204, summary="Delete a segment (its members exit)", dependencies=[SegmentsWrite]
)
async def delete_segment(name: str, res: Res) -> Response:
    await run_in_threadpool(remove, res, name)
    return Response(status_code=204)


@router.get(
    "/v1/segments/{name}/members", summary="Profile ids in a segment, a page at a time", dependencies=[ProfilesRead]
)
def segment_members(
    request: Request,
    name: str,
    res: Res,
    cursor: int = Query(0, ge=0, lt=2**63),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    if name not in definitions(res)[0]:
        raise HTTPException(404, f"no segment {name!r}")
    next_cursor, members = res.redis.sscan(members_key(name), cursor=cursor, count=limit)
    audit(request, res, "segment.members", detail=f"{len(members)} members of {name}")
    return {
        "segment": name,
        "members": sorted(m.decode() for m in members),
        "next_cursor": int(next_cursor),
        "size": membership.sizes(res.redis, [name])[name],
    }


@router.get(
    "/v1/segments/{name}/export",
    summary="Every member with the contact points they consented to, as CSV or JSON Lines (streamed)",
    dependencies=[ProfilesRead],
)
def export_segment(
    request: Request, name: str, res: Res, fmt: Annotated[Format, Query(alias="format")] = "csv"
) -> StreamingResponse:
    if name not in definitions(res)[0]:
        raise HTTPException(404, f"no segment {name!r}")
    audit(request, res, "segment.export", detail=f"{name} as {fmt}")
    return StreamingResponse(
        export_lines(ProfileReader(res.engine), res.redis, name, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


@router.get("/v1/segments/{name}/history", summary="The segment's size over time, newest first", dependencies=[OpsRead])
def segment_history(
    name: str, res: Res, since: datetime | None = None, limit: int = Query(1440, ge=1, le=10_000)
) -> dict[str, Any]:
    if since is not None and since.tzinfo is None:
        raise HTTPException(400, "since needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    if name not in definitions(res)[0]:
        raise HTTPException(404, f"no segment {name!r}")
    rows = segment_store(res).history(name, since, limit)
    return {"segment": name, "sizes": [{"at": at, "size": size} for at, size in rows]}


def test_against(res: Resources, body: ConditionTest) -> dict[str, Any]:
    profile = current_profile(ProfileCache(res.redis), ProfileReader(res.engine), body.profile_id)
    if profile is None:
        raise HTTPException(404, f"no profile {body.profile_id!r}")
    try:
        return try_condition(body.condition, profile.model_dump(mode="json"), datetime.now(UTC))
    except SegmentError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.post(
    "/v1/segments/test",
    summary="Evaluate a condition against a profile (nothing is saved)",
    dependencies=[ProfilesRead],
)
async def test_condition(body: ConditionTest, request: Request, res: Res) -> dict[str, Any]:
    found = await run_in_threadpool(test_against, res, body)
    await run_in_threadpool(audit, request, res, "profile.read", body.profile_id, "condition test")
    return found
