"""Profile reads: by id, or by any identifier (``?email=``, ``?user_id=``, ``?anonymous_id=`` …).

A merged profile's id, and identifiers still pointing at it, read the profile it was merged into."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from crmhub.web import Authorized, Res, Resources
from schemas.profile import Profile
from services.profile.cache import ProfileCache

router = APIRouter(tags=["profiles"], dependencies=[Authorized])

# query parameter -> identifier kind (``user_id`` is Segment's name for the customer id)
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


@router.get("/v1/profiles/{profile_id}", response_model=Profile)
async def get_profile(profile_id: str, res: Res) -> Profile:
    profile = await run_in_threadpool(load_profile, res, profile_id)
    if profile is None:
        raise HTTPException(404, f"no profile {profile_id!r}")
    return profile


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
