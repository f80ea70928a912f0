"""ingest's Redis state: event-id claims (dedup window) and the identity graph.

The identity graph is three kinds of keys, where ``<value>`` is always the identifier's keyed hash
(``h1:…``, :mod:`crmhub.core.pseudonyms`), never the e-mail, phone or id itself:

- ``crmhub:id:<kind>:<value>`` -> the profile id the identifier belongs to;
- ``crmhub:profile-ids:<profile>``: the profile's identifiers, a hash whose fields are ``<kind>:<value>``
  (the reverse index: its count per kind is what limits are checked against, its fields what a merge
  repoints). One small hash a profile, which Redis packs into one allocation: two sets (one per kind, as
  before) took ~610 bytes a profile known by two identifiers, a third of Redis's memory without the cache;
- ``crmhub:merged:<absorbed>`` -> the survivor a profile was merged into, for late lookups of its id.

Each batch makes at most two round trips for identity, both Lua scripts. ``snapshot`` reads the profile of
every identifier of the batch and the per-kind counts of those profiles, and returns them as one JSON
string. The worker resolves the whole batch on it (pure, :mod:`services.ingest.identity`) and ``apply``
writes the plan: merges (repoint every identifier of the absorbed profile, move its sets, record the merge),
new links and the merge events to publish (an outbox, see below). ``apply`` first computes the same
snapshot again and writes nothing unless it is byte for byte the one the plan was made on: optimistic
concurrency. Another ingest instance that linked or merged one of the batch's identifiers or profiles in
between makes ``apply`` refuse, and the worker reads a new snapshot and resolves again. A script runs
atomically, so the check and the writes see no one else's writes between them.

The outbox: ``apply`` also pushes the batch's merge events to ``crmhub:merge-outbox``; the worker drops
them from it once Kafka has them. A crash in between would otherwise lose a merge for good (the replayed
input finds its identifiers merged already), so an ingest that starts sends what the outbox holds first
(downstream a merge seen twice is a no-op).

The scripts touch keys they compute (the absorbed profile's identifiers), so they need one Redis (not
Redis Cluster). Identifiers linked before the reverse index existed count as held by no profile.

Erasing a profile (:meth:`IngestState.erase`) links each of its identifiers to
:data:`services.ingest.identity.ERASED` and drops its reverse index: events carrying them are suppressed
from then on. A batch resolved on a snapshot taken before the erase is refused by ``apply`` (its snapshot
changed) and resolved again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from crmhub.core.pseudonyms import Pseudonyms
from schemas.events import IDENTIFIER_KINDS
from services.ingest.identity import ERASED, BatchPlan, IdKey, Snapshot

DEDUP_PREFIX = "crmhub:dedup:"
IDENTITY_PREFIX = "crmhub:id:"
PROFILE_IDS_PREFIX = "crmhub:profile-ids:"
MERGED_PREFIX = "crmhub:merged:"
MERGE_OUTBOX = "crmhub:merge-outbox"

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

_GRAPH = f"""
local ID, OWNED, MERGED, OUTBOX = '{IDENTITY_PREFIX}', '{PROFILE_IDS_PREFIX}', '{MERGED_PREFIX}', '{MERGE_OUTBOX}'
local KINDS = {{{", ".join(f"'{kind}'" for kind in IDENTIFIER_KINDS)}}}

-- the profile of each of keys ('' when unknown), then for each profile named: its id and per-kind counts
local function snapshot(keys)
  local out, seen, named = {{}}, {{}}, {{}}
  for i, key in ipairs(keys) do
    local pid = redis.call('GET', key)
    out[i] = pid or ''
    if pid and not seen[pid] then
      seen[pid] = true
      named[#named + 1] = pid
    end
  end
  for _, pid in ipairs(named) do
    out[#out + 1] = pid
    local counts = {{}}
    for _, field in ipairs(redis.call('HKEYS', OWNED .. pid)) do
      local kind = string.match(field, '^[^:]*')
      counts[kind] = (counts[kind] or 0) + 1
    end
    for _, kind in ipairs(KINDS) do
      out[#out + 1] = counts[kind] or 0
    end
  end
  return cjson.encode(out)
end
"""

# KEYS: identity keys. Returns the snapshot (JSON).
_SNAPSHOT = _GRAPH + "return snapshot(KEYS)"

# KEYS: the identity keys of the snapshot ARGV[1]; ARGV[2]: JSON {merges: [[survivor, absorbed]],
# links: [[kind, value, profile]], outbox: [event]}. Returns 0, writing nothing, if the snapshot changed.
_APPLY = (
    _GRAPH
    + """
if snapshot(KEYS) ~= ARGV[1] then
  return 0
end
local plan = cjson.decode(ARGV[2])
for _, merge in ipairs(plan.merges) do
  local survivor, absorbed = merge[1], merge[2]
  local into = OWNED .. survivor
  for _, field in ipairs(redis.call('HKEYS', OWNED .. absorbed)) do
    redis.call('SET', ID .. field, survivor)  -- a field is '<kind>:<value>', its identity key ID .. field
    redis.call('HSET', into, field, '')
  end
  redis.call('DEL', OWNED .. absorbed)
  redis.call('SET', MERGED .. absorbed, survivor)
end
for _, link in ipairs(plan.links) do
  redis.call('SET', ID .. link[1] .. ':' .. link[2], link[3])
  redis.call('HSET', OWNED .. link[3], link[1] .. ':' .. link[2], '')
end
for _, event in ipairs(plan.outbox) do
  redis.call('RPUSH', OUTBOX, event)
end
return 1
"""
)


def _id_key(key: IdKey) -> str:
    return f"{IDENTITY_PREFIX}{key[0]}:{key[1]}"


def owned_key(profile_id: str) -> str:
    """The profile's reverse index: a hash of ``<kind>:<value>`` fields."""
    return PROFILE_IDS_PREFIX + profile_id


def owned_field(key: IdKey) -> str:
    """An identifier's field in a reverse index (the scripts write it as ``kind .. ':' .. value`` too)."""
    return f"{key[0]}:{key[1]}"


def owned_ids(fields: Sequence[bytes]) -> set[IdKey]:
    """The (kind, value) of each field of a reverse index."""
    return {(kind, value) for kind, _, value in (f.decode().partition(":") for f in fields)}


def parse_snapshot(keys: Sequence[IdKey], raw: bytes) -> Snapshot:
    """The snapshot script's JSON as a :class:`Snapshot` of ``keys``."""
    flat = orjson.loads(raw)
    links = {key: pid for key, pid in zip(keys, flat, strict=False) if pid}
    rest, width = flat[len(keys) :], 1 + len(IDENTIFIER_KINDS)
    counts = {
        rest[i]: dict(zip(IDENTIFIER_KINDS, rest[i + 1 : i + width], strict=True)) for i in range(0, len(rest), width)
    }
    return Snapshot(links, counts)


class IngestState:
    def __init__(self, redis: Any, dedup_window_s: int, identity_key: bytes) -> None:
        self.redis = redis
        self.window = dedup_window_s
        self.key = identity_key
        self.pseudonym = Pseudonyms(identity_key)
        self._claim = redis.register_script(_CLAIM)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._apply = redis.register_script(_APPLY)

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

    def hashed(self, key: IdKey) -> IdKey:
        """The identifier as Redis knows it: its keyed hash (:mod:`crmhub.core.pseudonyms`)."""
        return key[0], self.pseudonym(*key)

    def _id_key(self, key: IdKey) -> str:
        return _id_key(self.hashed(key))

    def _id_keys(self, keys: Sequence[IdKey]) -> list[str]:
        """``_id_key`` of each, inlined: ingest's hot path (two calls per identifier per batch)."""
        hashed = self.pseudonym
        return [f"{IDENTITY_PREFIX}{kind}:{hashed(kind, value)}" for kind, value in keys]

    def snapshot(self, keys: Sequence[IdKey]) -> tuple[Snapshot, bytes]:
        """The graph around ``keys``, and the raw form ``apply`` checks it against."""
        raw = bytes(self._snapshot(keys=self._id_keys(keys))) if keys else b"[]"
        return parse_snapshot(keys, raw), raw

    def apply(self, keys: Sequence[IdKey], raw_snapshot: bytes, plan: BatchPlan, outbox: Sequence[bytes]) -> bool:
        """Write the plan made on the snapshot of ``keys``; False, writing nothing, if the graph changed since."""
        if not plan.links and not plan.merges:
            return True
        doc = {
            "merges": [[m.survivor, m.absorbed] for m in plan.merges],
            "links": [[*self.hashed(key), pid] for key, pid in plan.links.items()],
            "outbox": [event.decode() for event in outbox],
        }
        return bool(self._apply(keys=self._id_keys(keys), args=[raw_snapshot, orjson.dumps(doc)]))

    def restore_links(self, rows: Sequence[tuple[str, str, str]]) -> int:
        """Link each (kind, value, profile id) that the index does not know (SQL is the record; a link
        Redis holds is newer or an erasure, and wins), and put every identifier whose link names its profile
        in that profile's reverse index. Returns how many links were missing."""
        pipe = self.redis.pipeline(transaction=False)
        hashed = [self.hashed((kind, value)) for kind, value, _ in rows]
        for key, (_, _, pid) in zip(hashed, rows, strict=True):
            id_key = _id_key(key)
            pipe.set(id_key, pid, nx=True)
            pipe.get(id_key)
        replies = pipe.execute()
        for key, (_, _, pid), holder in zip(hashed, rows, replies[1::2], strict=True):
            if holder == pid.encode():
                pipe.hset(owned_key(pid), owned_field(key), b"")
        pipe.execute()
        return sum(bool(ok) for ok in replies[::2])

    def restore_suppressed(self, keys: Sequence[IdKey]) -> int:
        """Link each erased identifier to ERASED again (the suppression list in SQL is the record);
        returns how many Redis did not have so."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(self._id_key(key), ERASED, get=True)
        return sum(old != ERASED.encode() for old in pipe.execute())

    def pending_merges(self) -> list[bytes]:
        return [bytes(event) for event in self.redis.lrange(MERGE_OUTBOX, 0, -1)]

    def drop_sent_merges(self, pipe: Any, events: Sequence[bytes]) -> None:
        for event in events:
            pipe.lrem(MERGE_OUTBOX, 1, event)

    def erase(self, profile_id: str, known: Sequence[IdKey]) -> list[IdKey]:
        """Link every identifier of the profile (``known`` and those of its reverse index) to ERASED and
        drop its reverse index; the identifiers erased, as their keyed hashes (what the suppression list
        in SQL keeps: no clear identifier of an erased person is kept anywhere)."""
        owned = owned_key(profile_id)
        keys = sorted(owned_ids(self.redis.hkeys(owned)) | {self.hashed(key) for key in known})
        pipe = self.redis.pipeline(transaction=True)
        for id_key in keys:
            pipe.set(_id_key(id_key), ERASED)
        pipe.delete(owned)
        pipe.execute()
        return keys
