"""What the notifier re-reads of a customer before it acts (a journey step): the freshest
profile there is, the segments the customer is in (the segmenter's view) and whether they were erased.

The freshest profile is the profile service's Redis cache, else the SQL record: the cache keeps a
profile an hour after its last change, and journey waits run far longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import cast

import orjson
import redis.asyncio as aioredis

from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from schemas.readmodels.profiles import CACHE_PREFIX, ERASED_PREFIX, ProfileReader, cached_doc, full_doc
from schemas.readmodels.segments import profile_segments_key
from services.notifier.view import ProfileDoc

LoadDocs = Callable[[list[str]], Awaitable[Mapping[str, str]]]


@dataclass(frozen=True)
class Fresh:
    """What a journey step is checked against: the freshest profile at hand (None: none), the segments the
    customer is in, whether the profile was erased."""

    profile: ProfileDoc | None = None
    segments: tuple[str, ...] = ()
    erased: bool = False


def sql_loader(settings: Settings) -> LoadDocs:
    """The stored documents of profiles, read from SQL in a worker thread (the agent's loop goes on)."""
    reader = ProfileReader(make_engine(settings.sql_url, migrate=False))

    async def load(profile_ids: list[str]) -> Mapping[str, str]:
        return await asyncio.to_thread(reader.load_docs, profile_ids)

    return load


async def read_fresh(redis: aioredis.Redis, load_docs: LoadDocs, profile_ids: Collection[str]) -> dict[str, Fresh]:
    """In one Redis pipeline, then one SQL query for the profiles the cache no longer holds."""
    ids = sorted(profile_ids)
    pipe = redis.pipeline(transaction=False)
    for pid in ids:
        pipe.get(CACHE_PREFIX + pid)
        pipe.smembers(profile_segments_key(pid))
        pipe.exists(ERASED_PREFIX + pid)
    results = await pipe.execute()
    docs: dict[str, str | bytes] = {pid: cached_doc(e) for pid, e in zip(ids, results[::3], strict=True) if e}
    missing = [pid for pid in ids if pid not in docs]
    if missing:
        docs.update(await load_docs(missing))
    fresh = {}
    for pid, members, erased in zip(ids, results[1::3], results[2::3], strict=True):
        segments = tuple(sorted(m.decode() for m in cast(set[bytes], members)))
        doc = docs.get(pid)
        fresh[pid] = Fresh(cast(ProfileDoc, full_doc(orjson.loads(doc))) if doc else None, segments, bool(erased))
    return fresh
