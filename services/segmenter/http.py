"""Segment reads: definitions with sizes, and members (paged with a cursor)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Query

from crmhub.web import Authorized, Res
from services.segmenter.keys import DEFINITIONS_KEY, MEMBERS_PREFIX

router = APIRouter(tags=["segments"], dependencies=[Authorized])


@router.get("/v1/segments", summary="Segment definitions with their current sizes")
def list_segments(res: Res) -> list[dict[str, Any]]:
    defs = {k.decode(): orjson.loads(v) for k, v in res.redis.hgetall(DEFINITIONS_KEY).items()}
    pipe = res.redis.pipeline(transaction=False)
    names = sorted(defs)
    for name in names:
        pipe.scard(MEMBERS_PREFIX + name)
    sizes = pipe.execute()
    return [{"name": n, **defs[n], "size": int(s)} for n, s in zip(names, sizes, strict=True)]


@router.get("/v1/segments/{name}/members", summary="Profile ids in a segment, a page at a time")
def segment_members(name: str, res: Res, cursor: int = 0, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    if not res.redis.hexists(DEFINITIONS_KEY, name):
        raise HTTPException(404, f"no segment {name!r}")
    next_cursor, members = res.redis.sscan(MEMBERS_PREFIX + name, cursor=cursor, count=limit)
    return {
        "segment": name,
        "members": sorted(m.decode() for m in members),
        "next_cursor": int(next_cursor),
        "size": int(res.redis.scard(MEMBERS_PREFIX + name)),
    }
