"""ingest's Redis state: event-id claims (dedup window) and the identity index. Pipelined per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.ingest.identity import IdKey

DEDUP_PREFIX = "crmhub:dedup:"
IDENTITY_PREFIX = "crmhub:id:"


def _id_key(key: IdKey) -> str:
    return f"{IDENTITY_PREFIX}{key[0]}:{key[1]}"


class IngestState:
    def __init__(self, redis: Any, dedup_window_s: int) -> None:
        self.redis = redis
        self.window = dedup_window_s

    def claim(self, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """Claim each (event_id, location); False where another input already claimed the event id.

        The claim stores where the event was read, so re-reading the same input after a crash is
        recognised as ours rather than as a duplicate.
        """
        pipe = self.redis.pipeline(transaction=False)
        for event_id, location in claims:
            pipe.set(DEDUP_PREFIX + event_id, location, nx=True, ex=self.window)
        won = pipe.execute()
        lost = [i for i, ok in enumerate(won) if not ok]
        if lost:
            owners = self.redis.mget([DEDUP_PREFIX + claims[i][0] for i in lost])
            for i, owner in zip(lost, owners, strict=True):
                won[i] = owner is not None and owner.decode() == claims[i][1]
        return [bool(ok) for ok in won]

    def lookup(self, keys: Sequence[IdKey]) -> dict[IdKey, str]:
        if not keys:
            return {}
        values = self.redis.mget([_id_key(k) for k in keys])
        return {k: v.decode() for k, v in zip(keys, values, strict=True) if v is not None}

    def link(self, links: Mapping[IdKey, str]) -> dict[IdKey, str]:
        """Store new identity links unless another instance linked the key first; return the winners."""
        keys = list(links)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(_id_key(key), links[key], nx=True)
        won = pipe.execute()
        lost = [k for k, ok in zip(keys, won, strict=True) if not ok]
        winners = dict(links)
        winners.update(self.lookup(lost))
        return winners
