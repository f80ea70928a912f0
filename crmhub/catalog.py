"""``crmhub catalog load FILE.jsonl``: a bulk load of the product catalogue, through the same path as the
catalogue's events (``product.upserted`` on ``crm.raw.catalog.v1``, written to the catalogue by ingest).

Each line is a product (the properties of ``product.upserted``: ``product_id``, ``category``, ``price``,
``warranty_months``, ``lifespan_months``, ``successor_id``…), or a whole ``product.upserted`` event, sent
as it is. A product line becomes an event whose id is a hash of the line, so loading the same file again
changes nothing (ingest drops the repeats) and a changed line is a new upsert; it happened when it is
loaded. Lines ingest refuses become dead letters with the reason, as with ``crmhub publish``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from crmhub.core.settings import Settings
from crmhub.publish import publish_file

SOURCE = "catalog"


def as_upsert(obj: Any, raw: bytes, now: datetime) -> tuple[str | None, bytes]:
    """The line as it goes to ``crm.raw.catalog.v1``, keyed by its product."""
    if not isinstance(obj, dict):
        return None, raw
    if obj.get("type") == "product.upserted":
        props = obj.get("properties")
        return (str(props.get("product_id")) if isinstance(props, dict) else None), raw
    event = {
        "event_id": "catalog-file:" + hashlib.sha256(raw).hexdigest()[:32],
        "source": SOURCE,
        "type": "product.upserted",
        "occurred_at": now.isoformat(),
        "properties": obj,
    }
    return (str(obj["product_id"]) if obj.get("product_id") else None), orjson.dumps(event)


def load_catalog(settings: Settings, path: Path) -> int:
    now = datetime.now(UTC)
    return publish_file(settings, path, SOURCE, lambda obj, raw: as_upsert(obj, raw, now))
