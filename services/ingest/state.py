"""ingest's Redis state: event-id claims (dedup window) and the identity index.

Each batch makes one round trip per operation: a Lua script runs the per-key ``SET NX`` for all of the
batch's keys inside Redis, so the client packs one command instead of one per event (redis-py packs
commands in Python). The scripts touch several keys, so they need one Redis (not Redis Cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.ingest.identity import IdKey

DEDUP_PREFIX = "crmhub:dedup:"
IDENTITY_PREFIX = "crmhub:id:"

# KEYS: dedup keys; ARGV[1]: window (s); ARGV[1 + i]: the location claiming KEYS[i].
# Returns 1 where the claim is this location's (new, or made by this same input before a crash).
_CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  local loc = ARGV[i + 1]
  if redis.call('SET', key, loc, 'NX', 'EX', ARGV[1]) then
    out[i] = 1
  elseif redis.call('GET', key) == loc then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: identity keys; ARGV[i]: the profile id to link KEYS[i] to unless it is linked already.
# Returns the profile id each key is linked to afterwards (ours, or the one linked first).
_LINK = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i], 'NX') then
    out[i] = ARGV[i]
  else
    out[i] = redis.call('GET', key)
  end
end
return out
"""


def _id_key(key: IdKey) -> str:
    return f"{IDENTITY_PREFIX}{key[0]}:{key[1]}"


class IngestState:
    def __init__(self, redis: Any, dedup_window_s: int) -> None:
        self.redis = redis
        self.window = dedup_window_s
        self._claim = redis.register_script(_CLAIM)
        self._link = redis.register_script(_LINK)

    def claim(self, claims: Sequence[tuple[str, str]]) -> list[bool]:
        """Claim each (event_id, location); False where another input already claimed the event id.

        The claim stores where the event was read, so re-reading the same input after a crash is
        recognised as ours rather than as a duplicate.
        """
        if not claims:
            return []
        keys = [DEDUP_PREFIX + event_id for event_id, _ in claims]
        won = self._claim(keys=keys, args=[self.window, *(location for _, location in claims)])
        return [bool(ok) for ok in won]

    def lookup(self, keys: Sequence[IdKey]) -> dict[IdKey, str]:
        if not keys:
            return {}
        values = self.redis.mget([_id_key(k) for k in keys])
        return {k: v.decode() for k, v in zip(keys, values, strict=True) if v is not None}

    def link(self, links: Mapping[IdKey, str]) -> dict[IdKey, str]:
        """Store new identity links unless another instance linked the key first; return the winners."""
        if not links:
            return {}
        keys = list(links)
        linked = self._link(keys=[_id_key(k) for k in keys], args=[links[k] for k in keys])
        return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in zip(keys, linked, strict=True)}
