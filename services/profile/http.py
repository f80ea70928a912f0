"""Profile reads: by id, or by any identifier (``?email=``, ``?user_id=``, ``?anonymous_id=`` …), a
profile's timeline (its recent events) and the segments it is in (the segmenter's read model).

A merged profile's id, and identifiers still pointing at it, read the profile it was merged into.
Export and erasure reach every service's data, so they are in the composition root (``crmhub/privacy.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from crmhub.core.web import ProfilesRead, Res, Resources, audit
from schemas.profile import Profile
from schemas.readmodels.profiles import ProfileCache, current_profile
from schemas.readmodels.segments import segments_of
from services.profile.store import ProfileStore

router = APIRouter(tags=["profiles"], dependencies=[ProfilesRead])

# query parameter -> identifier kind (``user_id`` is Segment's name for the customer id)

LOOKUPS = {
    "user_id": "customer_id",
    "customer_id": "customer_id",
    "email": "email",
    "phone": "phone",
    "loyalty_id": "loyalty_id",
    "anonymous_id": "anonymous_id",
}


def store_of(res: Resources) -> ProfileStore:
    return ProfileStore(res.engine)


def load_profile(res: Resources, profile_id: str) -> Profile | None:
    """The profile, or the one it was merged into (in as many steps as it takes)."""
    return current_profile(ProfileCache(res.redis), store_of(res), profile_id)


def find_profile(res: Resources, kind: str, value: str) -> Profile | None:
    if kind == "email":
        value = value.strip().lower()
    profile_id = store_of(res).profile_id_for(kind, value)
    return None if profile_id is None else load_profile(res, profile_id)


T = TypeVar("T")


async def read_or_404(
    request: Request, read: Callable[..., T | None], res: Resources, profile_id: str, *args: Any
) -> T:
    """``read(res, profile_id, *args)`` off the event loop, recorded in the audit log; a 404 naming the
    id when it finds nothing."""
    found = await run_in_threadpool(read, res, profile_id, *args)
    if found is None:
        raise HTTPException(404, f"no profile {profile_id!r}")
    action = "profile.export" if read.__name__ == "export_profile" else "profile.read"
    await run_in_threadpool(audit, request, res, action, profile_id)
    return found


@router.get("/v1/profiles/{profile_id}", response_model=Profile)
async def get_profile(profile_id: str, request: Request, res: Res) -> Profile:
    return await read_or_404(request, load_profile, res, profile_id)


@router.get("/v1/profiles", response_model=Profile, summary="Look a profile up by any identifier")
async def lookup_profile(
    request: Request,
    res: Res,
    email: str | None = None,
    user_id: str | None = None,
    customer_id: str | None = None,
    anonymous_id: str | None = None,
    phone: str | None = None,
    loyalty_id: str | None = None,
) -> Profile:
    given: dict[str, Any] = {
        "email": email,
        "user_id": user_id,
        "customer_id": customer_id,
        "anonymous_id": anonymous_id,
        "phone": phone,
        "loyalty_id": loyalty_id,
    }
    asked = [(LOOKUPS[k], v) for k, v in given.items() if v]
    if len(asked) != 1:
        raise HTTPException(400, f"give exactly one of {', '.join(LOOKUPS)}")
    kind, value = asked[0]
    profile = await run_in_threadpool(find_profile, res, kind, value)
    if profile is None:
        raise HTTPException(404, f"no profile with {kind} {value!r}")
    await run_in_threadpool(audit, request, res, "profile.read", profile.profile_id, f"looked up by {kind}")
    return profile


def read_timeline(
    res: Resources, profile_id: str, limit: int, before: datetime | None, offset: int
) -> dict[str, Any] | None:
    profile = load_profile(res, profile_id)
    if profile is None:
        return None
    rows = store_of(res).timeline(profile.profile_id, limit, before, offset)
    events = [{**row, "event": orjson.loads(row["event"])} for row in rows]
    return {
        "profile_id": profile.profile_id,
        "events": events,
        "next_before": events[-1]["occurred_at"] if len(events) == limit else None,
    }


@router.get("/v1/profiles/{profile_id}/events", summary="The profile's recent events, newest first")
async def profile_events(
    request: Request,
    profile_id: str,
    res: Res,
    limit: int = Query(50, ge=1, le=200),
    before: datetime | None = None,
    offset: int = Query(0, ge=0, le=100_000),
) -> dict[str, Any]:
    if before is not None and before.tzinfo is None:
        raise HTTPException(400, "before needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return await read_or_404(request, read_timeline, res, profile_id, limit, before, offset)


def read_segments(res: Resources, profile_id: str) -> dict[str, Any] | None:
    profile = load_profile(res, profile_id)
    return (
        None
        if profile is None
        else {"profile_id": profile.profile_id, "segments": segments_of(res.redis, profile.profile_id)}
    )


@router.get("/v1/profiles/{profile_id}/segments", summary="The segments the profile is in now")
async def profile_segments(profile_id: str, request: Request, res: Res) -> dict[str, Any]:
    return await read_or_404(request, read_segments, res, profile_id)
