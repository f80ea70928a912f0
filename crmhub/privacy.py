"""Everything held about a person (export, GDPR Article 15) and erasure (GDPR Article 17, like Segment's
SUPPRESS_WITH_DELETE; see docs/profile.md for what it reaches).

Both reach every service's data (the profile store, ingest's identity index and suppression list, the
segmenter's membership, the notifier's alert log), so they are wired here in the composition root, the
one layer allowed to import several services; the services themselves never import each other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from crmhub.core.pseudonyms import identity_key
from crmhub.core.stats import RECENT_ALERTS
from crmhub.core.topics import ERASURES, PROFILES
from crmhub.core.web import ProfilesErase, ProfilesRead, Res, Resources, audit
from schemas.readmodels.journeys import history_key
from schemas.readmodels.profiles import ProfileCache, mark_erased
from schemas.readmodels.segments import segments_of
from services.ingest.state import IngestState
from services.notifier.alertlog import AlertLog
from services.profile.http import load_profile, read_or_404, store_of
from services.segmenter import membership

router = APIRouter(tags=["profiles"])

EXPORTED_ALERTS = 1000  # the newest alerts of the person in an export
EXPORTED_EVENTS = 10_000  # the newest events; older ones page through /v1/profiles/{id}/events


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
        "identifiers": [{"kind": kind, "value": value} for kind, value in store_of(res).identifiers_of(pid)],
        "events": [
            {**row, "event": orjson.loads(row["event"])} for row in store_of(res).timeline(pid, EXPORTED_EVENTS)
        ],
        "segments": segments_of(res.redis, pid),
        "alerts": alerts_of(res, pid),
    }


@router.get(
    "/v1/profiles/{profile_id}/export",
    summary="Everything held about the person (GDPR Article 15)",
    dependencies=[ProfilesRead],
)
async def export(profile_id: str, request: Request, res: Res) -> dict[str, Any]:
    return await read_or_404(request, export_profile, res, profile_id)


def erase_profile(res: Resources, profile_id: str) -> bool:
    """Erase the profile ``profile_id`` reads; False when there is none. Suppress first (ingest drops new
    events of its identifiers), then delete: SQL (profile, identifiers, timeline; its id recorded as
    erased, so the profile service drops events already past ingest), cache, segment membership, recent
    alerts and the alert log, the journey history, a tombstone on the compacted crm.profiles.v1, and a
    record on crm.erasures.v1 for the state the notifier keeps in its tables (journey enrollments). The
    erasure mark comes before any deletion: a change of the profile still in flight finds it after its
    write (the segmenter takes its membership back, the journeys drop its waits)."""
    profile = load_profile(res, profile_id)
    if profile is None:
        return False
    pid = profile.profile_id
    known = set(store_of(res).identifiers_of(pid))
    known.update((kind, value) for kind, values in profile.identifiers.items() for value in values)
    state = IngestState(res.redis, res.settings.dedup_window_s, identity_key(res.settings))
    suppressed = state.erase(pid, sorted(known))
    ids = sorted({pid, profile_id})
    for i in ids:
        mark_erased(res.redis, i)
    store_of(res).erase(ids, datetime.now(UTC), suppressed)
    ProfileCache(res.redis).invalidate(ids)
    alerts = [doc for doc in res.redis.lrange(RECENT_ALERTS, 0, -1) if orjson.loads(doc).get("profile_id") == pid]
    membership.erase(res.redis, pid, res.settings.partitions)
    pipe = res.redis.pipeline(transaction=False)
    for doc in alerts:
        pipe.lrem(RECENT_ALERTS, 0, doc)
    pipe.delete(*(history_key(i) for i in ids))  # their journey history
    pipe.execute()
    AlertLog(res.redis).forget(pid)
    if res.settings.publishes_profiles:  # the compacted topic forgets the profile too
        res.producer.send(PROFILES, key=pid.encode(), value=None)
    at = datetime.now(UTC).isoformat()
    for i in ids:  # the journeys forget their enrollments (faust tables, on the profile's partition)
        res.producer.send(ERASURES, key=i.encode(), value=orjson.dumps({"profile_id": i, "erased_at": at}))
    res.producer.flush()
    return True


@router.delete(
    "/v1/profiles/{profile_id}",
    status_code=204,
    summary="Erase the person: delete the profile, suppress new events",
    dependencies=[ProfilesErase],
)
async def erase(profile_id: str, request: Request, res: Res) -> Response:
    if not await run_in_threadpool(erase_profile, res, profile_id):
        raise HTTPException(404, f"no profile {profile_id!r}")
    await run_in_threadpool(audit, request, res, "profile.erase", profile_id)
    return Response(status_code=204)
