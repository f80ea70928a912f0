"""Segment reads: definitions with sizes, and members (paged with a cursor)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from crmhub.web import Authorized, Res, Resources
from services.segmenter.keys import MEMBERS_PREFIX
from services.segmenter.rules import SegmentDef, load_definitions

router = APIRouter(tags=["segments"], dependencies=[Authorized])


def definitions(res: Resources) -> dict[str, SegmentDef]:
    return {d.name: d for d in load_definitions(res.settings.segments_file)}


@router.get("/v1/segments", summary="Segment definitions with their current sizes")
def list_segments(res: Res) -> list[dict[str, Any]]:
    defs = definitions(res)
    pipe = res.redis.pipeline(transaction=False)
    for name in defs:
        pipe.scard(MEMBERS_PREFIX + name)
    sizes = pipe.execute()
    return [
        {"name": d.name, "description": d.description, "condition": d.condition, "size": int(size)}
        for d, size in zip(defs.values(), sizes, strict=True)
    ]


@router.get("/v1/segments/{name}/members", summary="Profile ids in a segment, a page at a time")
def segment_members(name: str, res: Res, cursor: int = 0, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    if name not in definitions(res):
        raise HTTPException(404, f"no segment {name!r}")
    next_cursor, members = res.redis.sscan(MEMBERS_PREFIX + name, cursor=cursor, count=limit)
    return {
        "segment": name,
        "members": sorted(m.decode() for m in members),
        "next_cursor": int(next_cursor),
        "size": int(res.redis.scard(MEMBERS_PREFIX + name)),
    }
