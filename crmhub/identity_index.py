"""ingest's identity index in Redis: rebuilt from SQL (``crmhub identity rebuild``), and upgraded from
clear identifiers to their keyed hashes (:mod:`crmhub.core.pseudonyms`) and from a reverse index of sets
(one per profile and kind) to one hash per profile (:mod:`services.ingest.state`).

An upgrade is a rebuild, not a rename: a clear key cannot be told from a pseudonym's by Redis alone, but
SQL holds every link (``identifiers``) and every suppression, so the clear keys and the old sets are
deleted and the index made again from SQL, hashed. ``crmhub up`` does it once, before ingest starts, when
Redis does not carry the current format's mark yet; with external servers run ``crmhub identity rebuild``
with ingest stopped.
"""

from __future__ import annotations

from typing import Any

import redis
from rich.progress import Progress

from crmhub.core.pseudonyms import MARK, identity_key, pseudonym
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from services.ingest.state import IDENTITY_PREFIX, PROFILE_IDS_PREFIX, IngestState, owned_field, owned_ids
from services.profile.store import ProfileStore

FORMAT_KEY = "crmhub:identity-format"
FORMAT = f"{MARK}+profile-hash"  # keyed hashes only (MARK, their scheme), a reverse-index hash a profile


def is_clear(value: str) -> bool:
    return pseudonym(b"", "", value) != value


def drop_clear(client: Any) -> int:
    """Delete the identity keys and reverse-index fields that are clear identifiers, and the reverse index's
    sets of before (the rebuild writes them again as hashes); how many clear identifiers."""
    dropped = 0
    for key in client.scan_iter(match=IDENTITY_PREFIX + "*", count=1000):
        if is_clear(key.decode()[len(IDENTITY_PREFIX) :].partition(":")[2]):
            dropped += client.delete(key)
    for key in client.scan_iter(match=PROFILE_IDS_PREFIX + "*", count=1000):
        if client.type(key) == b"set":
            dropped += sum(is_clear(m.decode()) for m in client.smembers(key))
            client.delete(key)
            continue
        clear = [owned_field(id_key) for id_key in owned_ids(client.hkeys(key)) if is_clear(id_key[1])]
        dropped += client.hdel(key, *clear) if clear else 0
    return dropped


def rebuild(settings: Settings) -> tuple[int, int, int]:
    """Drop clear identifiers, restore the links and suppressions SQL holds, hashed, with a progress bar;
    (dropped, restored, suppressed)."""
    client = redis.Redis.from_url(settings.redis_dsn)
    store = ProfileStore(make_engine(settings.sql_url))
    state = IngestState(client, settings.dedup_window_s, identity_key(settings))
    dropped, restored = drop_clear(client), 0
    with Progress() as progress:
        task = progress.add_task("identifiers", total=store.count_identifiers())
        for rows in store.iter_identifiers():
            restored += state.restore_links(rows)
            progress.advance(task, len(rows))
    suppressed = state.restore_suppressed(store.suppressed())
    client.set(FORMAT_KEY, FORMAT)
    return dropped, restored, suppressed


def upgrade_if_needed(settings: Settings) -> None:
    """Rebuild the index unless Redis says it is in the current format (the first start after an upgrade)."""
    client = redis.Redis.from_url(settings.redis_dsn)
    if client.get(FORMAT_KEY) != FORMAT.encode():
        rebuild(settings)
