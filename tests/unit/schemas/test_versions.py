"""Older schema versions still decode (upcast to the current model); newer ones are refused, not guessed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.events import ComplaintResponded, PosSale, SocialMention, decode_event_batch, validate_event
from schemas.versions import SCHEMA_VERSION, VersionError, upcast, version_of
from tests.unit import factories as f

V1_SALE: dict[str, Any] = f.envelope(
    "pos.sale",
    source="pos",
    schema_version=1,
    properties={
        "store_id": "s-1",
        "till_id": "t-1",
        "receipt_id": "r-1",
        "total": "12.50",
        "currency": "EUR",
        "items": [{"product_id": "p-1", "price": "6.25", "quantity": 2}],
        "tender": "cash",
    },
)
V1_MENTION = f.envelope(
    "social.mention",
    source="social",
    schema_version=1,
    properties={"mention_id": "m-1", "platform": "twitter", "handle": "@ann", "text": "late again", "complaint": True},
)
V1_REPLY = f.envelope(
    "support.replied", source="support", schema_version=1, properties={"mention_id": "m-1", "agent": "bob"}
)


def test_a_v1_store_sale_decodes_as_the_current_model() -> None:
    event = validate_event(upcast(V1_SALE))
    assert isinstance(event, PosSale) and event.schema_version == SCHEMA_VERSION == 2
    props = event.properties
    assert [(i.product_id, i.price, i.quantity) for i in props.line_items] == [("p-1", Decimal("6.25"), 2)]
    assert [(t.method, t.amount, t.currency) for t in props.tenders] == [("cash", Decimal("12.50"), "EUR")]


def test_v1_mentions_and_replies_decode_with_their_new_names() -> None:
    mention, reply = validate_event(upcast(V1_MENTION)), validate_event(upcast(V1_REPLY))
    assert isinstance(mention, SocialMention) and mention.properties.message_id == "m-1"
    assert isinstance(reply, ComplaintResponded) and reply.properties.message_id == "m-1"


def test_upcasting_leaves_the_input_alone_and_current_events_unchanged() -> None:
    before = orjson.dumps(V1_SALE)
    upcast(V1_SALE)
    assert orjson.dumps(V1_SALE) == before
    current = f.envelope("identify", schema_version=2)
    assert upcast(current) == current
    assert upcast({k: v for k, v in current.items() if k != "schema_version"}) == current


def test_a_record_of_old_events_on_the_events_topic_still_decodes() -> None:
    """A replay of crm.events.v1 written by an older crmhub: the profile service reads it unchanged."""
    current = validate_event(f.envelope("identify", profile_id="P"))
    record = orjson.dumps([V1_SALE, orjson.loads(current.model_dump_json()), V1_REPLY])
    events = decode_event_batch(record)
    assert [type(e) for e in events] == [PosSale, type(current), ComplaintResponded]


@pytest.mark.parametrize(
    ("value", "version"), [(1, 1), (2, 2), ("1", 1), (2.0, 2)], ids=["int", "current", "string", "float"]
)
def test_version_of_reads_json_numbers_and_numeric_strings(value: Any, version: int) -> None:
    assert version_of({"schema_version": value}) == version


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "unsupported schema_version 3 (this hub reads up to 2)"),
        (0, "schema_version must be a whole number from 1 to 2, got 0"),
        (1.5, "schema_version must be a whole number from 1 to 2, got 1.5"),
        (True, "schema_version must be a whole number from 1 to 2, got True"),
        (None, "schema_version must be a whole number from 1 to 2, got None"),
        ("two", "schema_version must be a whole number from 1 to 2, got 'two'"),
    ],
)
def test_unreadable_versions_are_refused_with_a_reason(value: Any, message: str) -> None:
    with pytest.raises(VersionError) as info:
        upcast({**V1_SALE, "schema_version": value})
    assert str(info.value) == message
