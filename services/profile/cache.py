"""Redis cache of hot profiles. SQL is the record: entries are dropped before a write and set after it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from schemas.profile import Profile

CACHE_PREFIX = "crmhub:profile:"
CACHE_TTL_S = 3600


class ProfileCache:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def get_many(self, profile_ids: Sequence[str]) -> dict[str, Profile]:
        if not profile_ids:
            return {}
        docs = self.redis.mget([CACHE_PREFIX + pid for pid in profile_ids])
        return {pid: Profile.model_validate_json(doc) for pid, doc in zip(profile_ids, docs, strict=True) if doc}

    def invalidate(self, profile_ids: Iterable[str]) -> None:
        keys = [CACHE_PREFIX + pid for pid in profile_ids]
        if keys:
            self.redis.delete(*keys)

    def put_many(self, pipe: Any, docs: dict[str, bytes]) -> None:
        for pid, doc in docs.items():
            pipe.set(CACHE_PREFIX + pid, doc, ex=CACHE_TTL_S)
