"""The products-owned facet: purchases become owned items dated from the catalogue handed to the fold,
returns and cancellations take them away, out-of-order arrival, merge, the catalogue refresh, export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crmhub.core.conditions.fields import profile_view
from schemas.events import CatalogProductProperties, Event
from schemas.profile import Profile
from services.profile.facets.products import MAX_OWNED, add_months, products_bought, redate
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.policy import DEFAULT_RULES
from tests.unit import factories as f
from tests.unit.profile import events as ev

KETTLE = CatalogProductProperties(
    product_id="kettle", category="home", warranty_months=24, lifespan_months=60, successor_id="kettle-2"
)
RULES = DEFAULT_RULES.with_catalog({"kettle": KETTLE})


def fold(*events: Event, profile: Profile | None = None, rules: Any = RULES) -> Profile:
    return fold_events(profile, "p-1", events, rules)


def kettle_order(order_id: str = "o-1", minutes: float = 0, **kw: Any) -> Event:
    lines = ev.products(("kettle", "kitchen", "30.00", 1), ("filter", "kitchen", "5.00", 2))
    return ev.order(order_id, "40.00", lines=lines, minutes=minutes, **kw)


def returned(order_id: str, *product_ids: str, minutes: float = 0) -> Event:
    return f.make(
        "order.returned", properties={"order_id": order_id, "product_ids": list(product_ids)}, minutes=minutes
    )


def test_a_web_order_owns_its_lines_dated_from_the_catalogue() -> None:
    p = fold(kettle_order())
    kettle, filters = p.owned_items
    assert (kettle.product_id, kettle.order_id, kettle.bought_at, kettle.category) == ("kettle", "o-1", f.T0, "home")
    assert kettle.warranty_until == datetime(2027, 3, 14, 9, tzinfo=UTC)
    assert kettle.replace_from == datetime(2030, 3, 14, 9, tzinfo=UTC)
    assert (kettle.successor_id, kettle.catalogued) == ("kettle-2", True)
    assert (filters.quantity, filters.warranty_until, filters.catalogued) == (2, None, False)  # not catalogued
    view = profile_view(p.model_dump(mode="json"))
    assert view["owned_count"] == 2 and view["owned_products"] == ("filter", "kettle")
    assert view["warranty_ends"] == (kettle.warranty_until,) and view["replacements_due"] == (kettle.replace_from,)
    assert view["successor_available"] is True and view["successor_products"] == ("kettle-2",)


def test_a_till_sale_owns_its_lines_and_a_redelivered_order_adds_nothing() -> None:
    sale = ev.sale("s-1", "r-1", "30.00", lines=ev.products(("kettle", "home", "30.00", 1)))
    p = fold(sale, kettle_order(), kettle_order())
    assert [(i.product_id, i.order_id) for i in p.owned_items] == [
        ("kettle", "pos:s-1:r-1"), ("kettle", "o-1"), ("filter", "o-1")
    ]  # fmt: skip


def test_returns_and_cancellations_take_items_away() -> None:
    p = fold(kettle_order("o-1"), kettle_order("o-2"), returned("o-1", "filter"), ev.cancel("o-2"))
    assert [(i.product_id, i.order_id) for i in p.owned_items] == [("kettle", "o-1")]
    sale = ev.sale("s-1", "r-1", "30.00", lines=ev.products(("kettle", "home", "30.00", 1)))
    back = ev.store_return("s-1", "ret-1", "30.00", receipt_id="r-1", lines=ev.products(("kettle", "home", "30", 1)))
    assert [i.order_id for i in fold(sale, back, profile=p).owned_items] == ["o-1"]
    assert fold(returned("o-1"), profile=p).owned_items == []  # the whole order sent back


def test_a_return_or_cancellation_before_its_order_keeps_the_goods_from_being_owned() -> None:
    p = fold(returned("o-1", "kettle", minutes=5), kettle_order("o-1"))
    assert [i.product_id for i in p.owned_items] == ["filter"]
    assert fold(returned("o-1", minutes=5), kettle_order("o-1")).owned_items == []
    assert fold(ev.cancel("o-1", minutes=5), kettle_order("o-1")).owned_items == []


def test_a_product_unknown_when_bought_is_dated_when_the_catalogue_learns_it() -> None:
    p = fold(kettle_order(), rules=DEFAULT_RULES)  # the catalogue did not know the kettle yet
    assert all(not i.catalogued and i.warranty_until is None for i in p.owned_items)
    assert products_bought([kettle_order()]) == {"kettle", "filter"}
    assert redate(p, {"kettle": KETTLE}) is True
    assert p.owned_items[0].warranty_until == datetime(2027, 3, 14, 9, tzinfo=UTC)
    assert redate(p, {"kettle": KETTLE}) is False  # nothing new: not saved again
    successor = KETTLE.model_copy(update={"successor_id": "kettle-3"})
    assert redate(p, {"kettle": successor}) and p.owned_items[0].successor_id == "kettle-3"


def test_owned_items_are_bounded_oldest_purchase_first() -> None:
    orders = [ev.order(f"o-{i}", "1.00", lines=ev.products((f"p-{i}", "x", "1.00", 1)), minutes=i) for i in range(60)]
    p = fold(*orders)
    assert len(p.owned_items) == MAX_OWNED and p.owned_items[0].product_id == "p-10"


def test_merge_unites_items_once_each() -> None:
    ours = fold(kettle_order("o-1"))
    theirs = fold_events(None, "p-2", [kettle_order("o-1"), kettle_order("o-2", minutes=-5)], RULES)
    merged = merge_profiles(ours, theirs, RULES)
    assert [(i.order_id, i.product_id) for i in merged.owned_items] == [
        ("o-2", "filter"), ("o-2", "kettle"), ("o-1", "filter"), ("o-1", "kettle")
    ]  # fmt: skip


def test_owned_items_are_in_the_exported_profile_and_read_back() -> None:
    doc = fold(kettle_order()).model_dump(mode="json")  # the export holds the profile as dumped
    assert doc["owned_items"][0]["warranty_until"] == "2027-03-14T09:00:00Z"
    assert Profile.model_validate(doc).owned_items == fold(kettle_order()).owned_items


def test_months_are_added_on_the_calendar() -> None:
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2024, 11, 30, tzinfo=UTC), 3) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2024, 3, 14, tzinfo=UTC), 24) == datetime(2026, 3, 14, tzinfo=UTC)
