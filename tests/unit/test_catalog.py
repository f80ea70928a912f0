"""``crmhub catalog load``: each product line becomes a ``product.upserted`` ingest accepts, keyed by its
product, with an id that is the same for the same line (a reload changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from crmhub.catalog import as_upsert
from schemas.events import ProductUpserted
from services.ingest.decode import RawInput, Rejection, decode_raw

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_product_line_becomes_an_upsert_ingest_accepts() -> None:
    raw = b'{"product_id": "kettle", "category": "home", "warranty_months": 24, "successor_id": "kettle-2"}'
    key, value = as_upsert(orjson.loads(raw), raw, NOW)
    event = decode_raw(RawInput("catalog", value, NOW))
    assert key == "kettle" and isinstance(event, ProductUpserted)
    assert (event.properties.warranty_months, event.properties.successor_id, event.occurred_at) == (24, "kettle-2", NOW)
    assert as_upsert(orjson.loads(raw), raw, NOW)[1] == value  # the same line: the same event id
    changed = raw.replace(b"24", b"36")
    assert (
        orjson.loads(as_upsert(orjson.loads(changed), changed, NOW)[1])["event_id"] != orjson.loads(value)["event_id"]
    )


def test_whole_events_go_as_they_are_and_bad_lines_become_dead_letters() -> None:
    event = {"event_id": "e1", "source": "catalog", "type": "product.upserted", "occurred_at": NOW.isoformat()}
    raw = orjson.dumps({**event, "properties": {"product_id": "p1"}})
    assert as_upsert(orjson.loads(raw), raw, NOW) == ("p1", raw)
    bad = b'{"category": "home"}'  # no product id
    _, value = as_upsert(orjson.loads(bad), bad, NOW)
    rejected = decode_raw(RawInput("catalog", value, NOW))
    assert isinstance(rejected, Rejection) and rejected.location == "properties.product_id"


def test_products_belong_on_the_catalog_topic_only() -> None:
    raw = b'{"product_id": "kettle"}'
    _, value = as_upsert(orjson.loads(raw), raw, NOW)
    assert isinstance(decode_raw(RawInput("web", value, NOW)), Rejection)  # its source is catalog, not web
    order = {"event_id": "e2", "source": "catalog", "type": "order.delivered", "occurred_at": NOW.isoformat()}
    order |= {"customer_id": "c-1", "properties": {"order_id": "o-1"}}
    rejected = decode_raw(RawInput("catalog", orjson.dumps(order), NOW))
    assert isinstance(rejected, Rejection) and rejected.location == "type"
