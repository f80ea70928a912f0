"""The facets make up the profile: every field belongs to exactly one facet (or the core), every folded
event type has folds, and every segment field reads fields the profile has, with a type the segment
language knows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from crmhub.core.conditions.fields import FIELD_TYPES, SegmentSource, data_type, profile_view
from schemas.events import EVENT_MODELS, Identify, OrderCompleted, PosSale, SocialComment, SocialMention
from schemas.profile import SEGMENT_FIELDS, Profile, ProfileCore
from services.profile.facets import cart, complaints, loyalty, orders, payments, products
from services.profile.facets.registry import EVERY, FACETS, FOLDS

FACET_MODELS: list[type[BaseModel]] = [b for b in Profile.__bases__ if b is not ProfileCore]


def test_every_profile_field_is_owned_by_one_facet_or_the_core() -> None:
    owners: dict[str, list[str]] = {}
    for model in [ProfileCore, *FACET_MODELS]:
        for name in model.model_fields:
            owners.setdefault(name, []).append(model.__name__)
    assert set(owners) == set(Profile.model_fields)
    assert {name: o for name, o in owners.items() if len(o) > 1} == {}
    assert len(FACET_MODELS) == len(FACETS) - 1  # fulfilment sets the status of the orders facet's records


def test_folds_are_found_by_event_model_including_subclasses() -> None:
    assert set(FOLDS) <= set(EVENT_MODELS)
    assert FOLDS[OrderCompleted] == (orders.fold_order, products.fold_order)  # money, then the items owned
    assert FOLDS[PosSale] == (orders.fold_sale, products.fold_sale)
    assert FOLDS[SocialMention] == FOLDS[SocialComment] == (complaints.fold_mention,)  # declared on SocialMessage
    assert len(FOLDS[Identify]) == 1
    assert len(EVERY) == 3  # identifiers, context traits, context


def test_facets_merge_in_an_order_where_loyalty_precedes_orders() -> None:
    names = [f.name for f in FACETS]
    assert names.index("loyalty") < names.index("orders")
    assert all(any(f is m.FACET for f in FACETS) for m in (cart, loyalty, payments))


def test_every_segment_field_reads_profile_fields_and_has_a_type() -> None:
    names = [f.name for f in SEGMENT_FIELDS]
    assert len(names) == len(set(names))
    for f in SEGMENT_FIELDS:
        assert set(f.reads) <= set(Profile.model_fields), f.name
        assert FIELD_TYPES[f.name] == data_type(f.type)
    assert set(SegmentSource.model_fields) == {r for f in SEGMENT_FIELDS for r in f.reads} | {"merged_into"}


def test_a_segment_field_computed_on_the_whole_profile_equals_the_view() -> None:
    doc: dict[str, Any] = {
        "profile_id": "P",
        "created_at": "2026-06-01T00:00:00+00:00",
        "updated_at": "2026-06-01T00:00:00+00:00",
        "cart": {"items": [{"product_id": "a", "price": "2.50", "quantity": 3}], "value": "7.50"},
        "consent": {"email": {"marketing": {"granted": True, "at": "2026-06-01T00:00:00+00:00", "source": "web"}}},
        "loyalty": {"earned": 120, "redeemed": 20, "balance": 100, "tier": "silver"},
    }
    whole = Profile.model_validate(doc)
    view = profile_view(doc)
    assert view == {f.name: f.get(whole) for f in SEGMENT_FIELDS}
    assert (view["cart_items"], view["loyalty_points"], view["consent"]["email"]) == (3, 100, True)
