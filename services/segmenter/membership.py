"""Segment membership in Redis: the record the segmenter keeps and everybody reads.

- ``crmhub:segment:<name>``: a set of member profile ids per segment (sizes, members);
- ``crmhub:profile-segments:<profile_id>``: a set of segment names per profile (a profile's segments;
  the notifier puts them into alerts);
- per partition of crm.profile-changes.v1: the last evaluated version and field hashes of each profile
  (:class:`~services.segmenter.engine.Prior`), the due times of clock-dependent re-evaluations (a sorted
  set), and which condition of each segment the partition's membership reflects.

Every write of a batch goes in one pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from crmhub.kafka import partition_for_key
from crmhub.stats import STATS_KEY
from services.segmenter.engine import Outcome, Prior
from services.segmenter.keys import (
    BACKFILL_KEY,
    applied_key,
    due_key,
    members_key,
    profile_segments_key,
    state_key,
)


class Membership:
    """The segmenter's side (redis.asyncio)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def read(self, partition: int, pids: Sequence[str]) -> tuple[dict[str, Prior | None], dict[str, set[str]]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(state_key(partition), list(pids))
        for pid in pids:
            pipe.smembers(profile_segments_key(pid))
        states, *members = await pipe.execute()
        priors = {pid: Prior.decode(raw) for pid, raw in zip(pids, states, strict=True)}
        return priors, {pid: {m.decode() for m in ms} for pid, ms in zip(pids, members, strict=True)}

    async def write(self, partition: int, outcomes: Sequence[Outcome], changes: int) -> tuple[int, int]:
        """Record the outcomes of ``changes`` profile changes; (entries, exits)."""
        pipe = self.redis.pipeline(transaction=False)
        entered = exited = 0
        for out in outcomes:
            pid = out.profile_id
            pipe.hset(state_key(partition), pid, out.prior.encode())
            if out.entered:
                pipe.sadd(profile_segments_key(pid), *out.entered)
            if out.exited:
                pipe.srem(profile_segments_key(pid), *out.exited)
            for name in out.entered:
                pipe.sadd(members_key(name), pid)
            for name in out.exited:
                pipe.srem(members_key(name), pid)
            if out.due is None:
                pipe.zrem(due_key(partition), pid)
            else:
                pipe.zadd(due_key(partition), {pid: out.due.timestamp()})
            entered, exited = entered + len(out.entered), exited + len(out.exited)
        conditions = sum(o.evaluated for o in outcomes)
        for name, value in (
            ("evaluated", changes),
            ("conditions", conditions),
            ("entered", entered),
            ("exited", exited),
        ):
            if value:
                pipe.hincrby(STATS_KEY, f"segmenter.{name}", value)
        await pipe.execute()
        return entered, exited

    async def remove(self, segment: str, pids: Sequence[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for pid in pids:
            pipe.srem(profile_segments_key(pid), segment)
        if pids:
            pipe.srem(members_key(segment), *pids)
        await pipe.execute()

    async def members_of_partition(self, segment: str, partition: int, partitions: int) -> list[str]:
        found = []
        async for raw in self.redis.sscan_iter(members_key(segment), count=1000):
            pid = raw.decode()
            if partition_for_key(raw, partitions) == partition:
                found.append(pid)
        return found

    async def sizes(self, names: Sequence[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.scard(members_key(name))
        return {name: int(size) for name, size in zip(names, await pipe.execute(), strict=True)}

    async def versions(self, partition: int, pids: Sequence[str]) -> dict[str, int]:
        raw = await self.redis.hmget(state_key(partition), list(pids)) if pids else []
        return {pid: prior.version for pid, r in zip(pids, raw, strict=True) if (prior := Prior.decode(r))}

    async def due(self, partition: int, now_ts: float, limit: int) -> list[str]:
        found = await self.redis.zrangebyscore(due_key(partition), "-inf", now_ts, start=0, num=limit)
        return [pid.decode() for pid in found]

    async def forget(self, partition: int, pids: Sequence[str]) -> None:
        """Profiles that no longer exist (erased): nothing to re-evaluate."""
        if pids:
            await self.redis.zrem(due_key(partition), *pids)

    async def applied(self, partition: int) -> dict[str, str]:
        raw = await self.redis.hgetall(applied_key(partition))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_applied(self, partition: int, fingerprints: dict[str, str], removed: Iterable[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        if fingerprints:
            pipe.hset(applied_key(partition), mapping=fingerprints)
        for name in removed:
            pipe.hdel(applied_key(partition), name)
        await pipe.execute()

    async def progress(self, segment: str, partition: int, done: int, total: int, finished: bool) -> None:
        doc = orjson.dumps({"done": done, "total": total, "finished": finished})
        await self.redis.hset(BACKFILL_KEY, f"{segment}:{partition}", doc)


# the API's side (redis-py, synchronous)


def segments_of(redis: Any, profile_id: str) -> list[str]:
    """The names of the segments the profile is in, sorted."""
    return sorted(m.decode() for m in redis.smembers(profile_segments_key(profile_id)))


def sizes(redis: Any, names: Sequence[str]) -> dict[str, int]:
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.scard(members_key(name))
    return {name: int(size) for name, size in zip(names, pipe.execute(), strict=True)}


def backfill_progress(redis: Any, segment: str) -> dict[str, Any] | None:
    """Over the partitions: profiles scanned, profiles to scan, and whether every partition finished;
    None when the segment was never backfilled."""
    parts = [
        orjson.loads(doc)
        for key, doc in redis.hgetall(BACKFILL_KEY).items()
        if key.decode().rpartition(":")[0] == segment
    ]
    if not parts:
        return None
    return {
        "done": sum(p["done"] for p in parts),
        "total": sum(p["total"] for p in parts),
        "finished": all(p["finished"] for p in parts),
    }


def erase(redis: Any, profile_id: str, partitions: int) -> None:
    """Take the profile out of every segment and forget the segmenter's record of it (no events: the
    person is gone)."""
    names = segments_of(redis, profile_id)
    partition = partition_for_key(profile_id.encode(), partitions)
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.srem(members_key(name), profile_id)
    pipe.delete(profile_segments_key(profile_id))
    pipe.hdel(state_key(partition), profile_id)
    pipe.zrem(due_key(partition), profile_id)
    pipe.execute()
