"""Segment membership in Redis: the record the segmenter keeps and everybody reads.

- ``crmhub:segment:<name>``: a set of member profile ids per segment (sizes, members);
- ``crmhub:profile-segments:<profile_id>``: a set of segment names per profile (a profile's segments;
  the notifier puts them into alerts);
- per partition of crm.profile-changes.v1, the segmenter's own record of each profile: the last evaluated
  version, field hashes and segments (:class:`~services.segmenter.engine.Prior` and the names; the sets
  above are views of it, written after it), the due times of clock-dependent re-evaluations (a sorted
  set), and which condition of each segment the partition's membership reflects.

Every write of a batch goes in one pipeline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from crmhub.core.kafka import partition_for_key
from crmhub.core.stats import STATS_KEY
from schemas.readmodels.profiles import ERASED_PREFIX
from schemas.readmodels.segments import members_key, profile_segments_key, segments_of
from services.segmenter.engine import Outcome, Prior
from services.segmenter.keys import BACKFILL_KEY, applied_key, due_key, state_key


def encode_state(prior: Prior, members: Iterable[str]) -> bytes:
    """A profile's record: its :class:`Prior`, then its segment names (comma separated)."""
    return prior.encode() + ",".join(sorted(members)).encode()


def decode_state(raw: bytes | None) -> tuple[Prior | None, set[str]]:
    """(prior, segments) of a record; (None, no segments) for none, or one of another format."""
    found = None if raw is None else Prior.decode(raw)
    if found is None or raw is None:
        return None, set()
    prior, size = found
    return prior, set(raw[size:].decode().split(",")) if len(raw) > size else set()


class Membership:
    """The segmenter's side (redis.asyncio)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def read(self, partition: int, pids: Sequence[str]) -> tuple[dict[str, Prior | None], dict[str, set[str]]]:
        """What the segmenter recorded of each profile: its :class:`Prior` and its segments. A profile with
        no readable record keeps the segments its view set holds (a record of an older layout)."""
        states = await self.redis.hmget(state_key(partition), list(pids))
        priors, members = {}, {}
        for pid, raw in zip(pids, states, strict=True):
            priors[pid], members[pid] = decode_state(raw)
        unknown = [pid for pid, prior in priors.items() if prior is None]
        if unknown:
            pipe = self.redis.pipeline(transaction=False)
            for pid in unknown:
                pipe.smembers(profile_segments_key(pid))
            for pid, names in zip(unknown, await pipe.execute(), strict=True):
                members[pid] = {n.decode() for n in names}
        return priors, members

    async def write(self, partition: int, outcomes: Sequence[Outcome], changes: int) -> tuple[int, int]:
        """Record the outcomes of ``changes`` profile changes, in one pipeline; (entries, exits). A profile
        erased while its change was on the way (its erasure mark is read after the write) is taken out of
        every segment again: the erasure took out what was there before."""
        pipe = self.redis.pipeline(transaction=False)
        _record_states(pipe, partition, outcomes)
        entered, exited = _record_moves(pipe, outcomes)
        counts = {"evaluated": changes, "conditions": sum(o.evaluated for o in outcomes)}
        for name, value in {**counts, "entered": entered, "exited": exited}.items():
            if value:
                pipe.hincrby(STATS_KEY, f"segmenter.{name}", value)
        joined = [o.profile_id for o in outcomes if o.entered]
        for pid in joined:
            pipe.exists(ERASED_PREFIX + pid)
        results = await pipe.execute()
        marks = results[len(results) - len(joined) :]
        erased = [pid for pid, mark in zip(joined, marks, strict=True) if mark]
        if erased:
            await self.take_back(partition, erased)
        return entered, exited

    async def take_back(self, partition: int, pids: Sequence[str]) -> None:
        """Erased profiles out of every segment, and the segmenter's record of them gone."""
        pipe = self.redis.pipeline(transaction=False)
        for pid in pids:
            pipe.smembers(profile_segments_key(pid))
        names = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for pid, members in zip(pids, names, strict=True):
            _erase(pipe, pid, sorted(m.decode() for m in members), partition)
        await pipe.execute()

    async def remove(self, partition: int, segment: str, pids: Sequence[str]) -> None:
        """Take the profiles out of a deleted segment (its exits are published)."""
        if not pids:
            return
        states = await self.redis.hmget(state_key(partition), list(pids))
        pipe = self.redis.pipeline(transaction=False)
        kept = {}
        for pid, raw in zip(pids, states, strict=True):
            prior, members = decode_state(raw)
            if prior is not None:
                kept[pid] = encode_state(prior, members - {segment})
            pipe.srem(profile_segments_key(pid), segment)
        if kept:
            pipe.hset(state_key(partition), mapping=kept)
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
        priors, _ = await self.read(partition, pids) if pids else ({}, {})
        return {pid: prior.version for pid, prior in priors.items() if prior is not None}

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


def _record_states(pipe: Any, partition: int, outcomes: Sequence[Outcome]) -> None:
    """The segmenter's own record of each profile, and when time alone may move it next."""
    if outcomes:
        pipe.hset(state_key(partition), mapping={o.profile_id: encode_state(o.prior, o.after) for o in outcomes})
    dues = {o.profile_id: o.due.timestamp() for o in outcomes if o.due is not None}
    if dues:
        pipe.zadd(due_key(partition), dues)
    never = [o.profile_id for o in outcomes if o.due is None]
    if never:
        pipe.zrem(due_key(partition), *never)


def _record_moves(pipe: Any, outcomes: Sequence[Outcome]) -> tuple[int, int]:
    """The views: each profile's segments, each segment's members; (entries, exits)."""
    joined: dict[str, list[str]] = defaultdict(list)  # segment -> profiles that entered it
    left: dict[str, list[str]] = defaultdict(list)
    for out in outcomes:
        if out.entered:
            pipe.sadd(profile_segments_key(out.profile_id), *out.entered)
        if out.exited:
            pipe.srem(profile_segments_key(out.profile_id), *out.exited)
        for name in out.entered:
            joined[name].append(out.profile_id)
        for name in out.exited:
            left[name].append(out.profile_id)
    for name, pids in joined.items():
        pipe.sadd(members_key(name), *pids)
    for name, pids in left.items():
        pipe.srem(members_key(name), *pids)
    return sum(len(p) for p in joined.values()), sum(len(p) for p in left.values())


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
    pipe = redis.pipeline(transaction=False)
    _erase(pipe, profile_id, segments_of(redis, profile_id), partition_for_key(profile_id.encode(), partitions))
    pipe.execute()


def _erase(pipe: Any, profile_id: str, names: Iterable[str], partition: int) -> None:
    for name in names:
        pipe.srem(members_key(name), profile_id)
    pipe.delete(profile_segments_key(profile_id))
    pipe.hdel(state_key(partition), profile_id)
    pipe.zrem(due_key(partition), profile_id)
