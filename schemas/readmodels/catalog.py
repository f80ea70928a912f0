"""The product catalogue, as ingest writes it and the profile service reads it.

Writer: ingest, from ``product.upserted`` events (``crm.raw.catalog.v1``, ``crmhub catalog load``). Reader:
the profile service, which hands the products of a batch's purchases to the fold (the fold never looks
anything up) and, between batches, dates again the owned items of products that changed.

It lives in Redis, beside the identity graph ingest keeps there: ingest has no SQL store, the profile
service reads the products of every batch of purchases in one round trip, and a catalogue is small
(thousands of products, no personal data). Three keys: the products (a hash of JSON entries, each with
the time of its event: an older event never overwrites a newer entry), a change counter, and which
product changed at which count (so a reader asks for the products changed since it last looked).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.events import CatalogProductProperties, ProductUpserted

PRODUCTS_KEY = "crmhub:catalog"  # hash: product id -> CatalogEntry JSON
SEQ_KEY = "crmhub:catalog:seq"  # counter: one more for every entry written
CHANGES_KEY = "crmhub:catalog:changes"  # sorted set: product id -> the counter when it last changed

# one entry, written only if no newer one is there; a change bumps the counter and marks the product
_UPSERT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and tonumber(cjson.decode(old)['ts']) > tonumber(ARGV[2]) then return 0 end
if old == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
return 1
"""


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product: CatalogProductProperties
    at: AwareDatetime  # the event's occurred_at
    ts: float  # the same as a number, for the write's comparison


def put_products(pipe: Any, events: Sequence[ProductUpserted]) -> None:
    """Write the products of ``events`` (a Redis pipeline's writes; the latest event of a product wins)."""
    for event in events:
        at = event.occurred_at
        entry = CatalogEntry(product=event.properties, at=at, ts=at.timestamp())
        args = (event.properties.product_id, entry.ts, entry.model_dump_json())
        pipe.eval(_UPSERT, 3, PRODUCTS_KEY, SEQ_KEY, CHANGES_KEY, *args)


class CatalogReader:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    def products(self, product_ids: Iterable[str]) -> dict[str, CatalogProductProperties]:
        """The catalogue's entries of those products it knows."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        docs = self.redis.hmget(PRODUCTS_KEY, ids)
        return {pid: CatalogEntry.model_validate_json(doc).product for pid, doc in zip(ids, docs, strict=True) if doc}

    def changed_since(self, seq: int) -> tuple[int, list[str]]:
        """The change counter now and the products changed after ``seq``."""
        now = int(self.redis.get(SEQ_KEY) or 0)
        if now <= seq:
            return now, []
        ids = self.redis.zrangebyscore(CHANGES_KEY, f"({seq}", now)
        return now, [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
