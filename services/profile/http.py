"""Profile reads: by id, or by any identifier (``?email=``, ``?user_id=``, ``?anonymous_id=`` …), and a
profile's timeline (its recent events), everything held about a person (export, GDPR Article 15), and
erasure (GDPR Article 17, like Segment's SUPPRESS_WITH_DELETE; see docs/profile.md for what it reaches).

A merged profile's id, and identifiers still pointing at it, read the profile it was merged into."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from crmhub.core.stats import RECENT_ALERTS
from crmhub.core.topics import PROFILES
from crmhub.core.web import Authorized, Res, Resources
from schemas.profile import Profile
from services.ingest.state import IngestState
from services.notifier.alertlog import AlertLog
from services.profile.cache import ProfileCache
from services.segmenter import membership

router = APIRouter(tags=["profiles"], dependencies=[Authorized])

# query parameter -> identifier kind (``user_id`` is Segment's name for the customer id)
EXPORTED_ALERTS = 1000  # the newest alerts of the person in an export

LOOKUPS = {
    "user_id": "customer_id",
    "customer_id": "customer_id",
    "email": "email",
    "phone": "phone",
    "loyalty_id": "loyalty_id",
    "anonymous_id": "anonymous_id",
}


def load_profile(res: Resources, profile_id: str) -> Profile | None:
    """The profile, or the one it was merged into (in as many steps as it takes)."""
    profile = _load_one(res, profile_id)
    while profile is not None and profile.merged_into:
        profile = _load_one(res, profile.merged_into)
    return profile


def _load_one(res: Resources, profile_id: str) -> Profile | None:
    cached = ProfileCache(res.redis).get_many([profile_id])
    if profile_id in cached:
        return cached[profile_id]
    return res.store.load([profile_id]).get(profile_id)


def find_profile(res: Resources, kind: str, value: str) -> Profile | None:
    if kind == "email":
        value = value.strip().lower()
    profile_id = res.store.profile_id_for(kind, value)
    return None if profile_id is None else load_profile(res, profile_id)


T = TypeVar("T")


async def read_or_404(read: Callable[..., T | None], res: Resources, profile_id: str, *args: Any) -> T:
    """``read(res, profile_id, *args)`` off the event loop; a 404 naming the id when it finds nothing."""
    found = await run_in_threadpool(read, res, profile_id, *args)
    if found is None:
        raise HTTPException(404, f"no profile {profile_id!r}")
    return found


@router.get("/v1/profiles/{profile_id}", response_model=Profile)
async def get_profile(profile_id: str, res: Res) -> Profile:
    return await read_or_404(load_profile, res, profile_id)


@router.get("/v1/profiles", response_model=Profile, summary="Look a profile up by any identifier")
async def lookup_profile(
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
    return profile


def read_timeline(
    res: Resources, profile_id: str, limit: int, before: datetime | None, offset: int
) -> dict[str, Any] | None:
    profile = load_profile(res, profile_id)
    if profile is None:
        return None
    rows = res.store.timeline(profile.profile_id, limit, before, offset)
    events = [{**row, "event": orjson.loads(row["event"])} for row in rows]
    return {
        "profile_id": profile.profile_id,
        "events": events,
        "next_before": events[-1]["occurred_at"] if len(events) == limit else None,
    }


@router.get("/v1/profiles/{profile_id}/events", summary="The profile's recent events, newest first")
async def profile_events(
    profile_id: str,
    res: Res,
    limit: int = Query(50, ge=1, le=200),
    before: datetime | None = None,
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    if before is not None and before.tzinfo is None:
        raise HTTPException(400, "before needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    return await read_or_404(read_timeline, res, profile_id, limit, before, offset)


def segments_of(res: Resources, profile_id: str) -> list[str]:
    """The segments the profile is in now, sorted."""
    return membership.segments_of(res.redis, profile_id)


def read_segments(res: Resources, profile_id: str) -> dict[str, Any] | None:
    profile = load_profile(res, profile_id)
    return (
        None
        if profile is None
        else {"profile_id": profile.profile_id, "segments": segments_of(res, profile.profile_id)}
    )


@router.get("/v1/profiles/{profile_id}/segments", summary="The segments the profile is in now")
async def profile_segments(profile_id: str, res: Res) -> dict[str, Any]:
    return await read_or_404(read_segments, res, profile_id)


def alerts_of(res: Resources, profile_id: str) -> list[dict[str, Any]]:
    """The profile's alerts in the alert log, newest first (with their status)."""
    return AlertLog(res.redis).query(customer=profile_id, limit=EXPORTED_ALERTS)


def export_profile(res: Resources, profile_id: str) -> dict[str, Any] | None:
    profile = load_profile(res, profile_id)
    if profile is None:
        return None
    pid = profile.profile_id
    return {
        "generated_at": datetime.now(UTC),
        "profile": profile.model_dump(mode="json"),
        "identifiers": [{"kind": kind, "value": value} for kind, value in res.store.identifiers_of(pid)],
        "events": [{**row, "event": orjson.loads(row["event"])} for row in res.store.timeline(pid)],
        "segments": segments_of(res, pid),
        "alerts": alerts_of(res, pid),
    }


@router.get("/v1/profiles/{profile_id}/export", summary="Everything held about the person (GDPR Article 15)")
async def export(profile_id: str, res: Res) -> dict[str, Any]:
    return await read_or_404(export_profile, res, profile_id)


def erase_profile(res: Resources, profile_id: str) -> bool:
    """Erase the profile ``profile_id`` reads; False when there is none. Suppress first (ingest drops new
    events of its identifiers), then delete: SQL (profile, identifiers, timeline; its id recorded as
    erased, so the profile service drops events already past ingest), cache, segment membership, recent
    alerts and the alert log, and a tombstone on the compacted crm.profiles.v1."""
    profile = load_profile(res, profile_id)
    if profile is None:
        return False
    pid = profile.profile_id
    known = set(res.store.identifiers_of(pid))
    known.update((kind, value) for kind, values in profile.identifiers.items() for value in values)
    suppressed = IngestState(res.redis, res.settings.dedup_window_s).erase(pid, sorted(known))
    ids = sorted({pid, profile_id})
    res.store.erase(ids, datetime.now(UTC), suppressed)
    ProfileCache(res.redis).invalidate(ids)
    alerts = [doc for doc in res.redis.lrange(RECENT_ALERTS, 0, -1) if orjson.loads(doc).get("profile_id") == pid]
    membership.erase(res.redis, pid, res.settings.partitions)
    pipe = res.redis.pipeline(transaction=False)
    for doc in alerts:
        pipe.lrem(RECENT_ALERTS, 0, doc)
    pipe.execute()
    AlertLog(res.redis).forget(pid)
    res.producer.send(PROFILES, key=pid.encode(), value=None)
    res.producer.flush()
    return True


@router.delete(
    "/v1/profiles/{profile_id}", status_code=204, summary="Erase the person: delete the profile, suppress new events"
)
async def erase(profile_id: str, res: Res) -> Response:
    if not await run_in_threadpool(erase_profile, res, profile_id):
        raise HTTPException(404, f"no profile {profile_id!r}")
    return Response(status_code=204)
