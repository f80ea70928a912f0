"""The browsing and cart facet: products viewed (the latest few, newest first) and the cart.

Events arrive roughly, not strictly, in time order: a cart change older than the order that emptied the
cart belongs to that order and must not refill the cart, and an order older than the cart's last change
leaves the newer cart alone (:func:`clear_for_order`, called by the orders facet)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from schemas.events import CartProduct, Event, ProductAdded, ProductRemoved, ProductViewed
from schemas.profile import Cart, CartItem, Profile, ViewedProduct
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_RECENT_VIEWS = 5
_NEVER = datetime.min.replace(tzinfo=UTC)


def fold_view(p: Profile, e: ProductViewed, rules: FoldRules) -> None:
    """The last MAX_RECENT_VIEWS products viewed, newest first by event time, each once."""
    p.product_views += 1
    item = e.properties
    if any(v.product_id == item.product_id and v.at >= e.occurred_at for v in p.recent_views):
        return
    view = ViewedProduct(
        product_id=item.product_id, name=item.name, category=item.category, price=item.price, at=e.occurred_at
    )
    views = [v for v in p.recent_views if v.product_id != item.product_id]
    if not views or e.occurred_at >= views[0].at:
        views.insert(0, view)
    else:
        views.append(view)
        views.sort(key=lambda v: v.at, reverse=True)
    p.recent_views = views[:MAX_RECENT_VIEWS]


def fold_add(p: Profile, e: ProductAdded, rules: FoldRules) -> None:
    if not _after_clearing(p.cart, e):
        return
    item: CartProduct = e.properties
    items = {i.product_id: i for i in p.cart.items}
    current = items.get(item.product_id)
    quantity = item.quantity + (current.quantity if current else 0)
    items[item.product_id] = CartItem(
        product_id=item.product_id,
        sku=item.sku,
        name=item.name,
        category=item.category,
        price=item.price,
        quantity=quantity,
    )
    _set_cart(p, list(items.values()), e)


def fold_remove(p: Profile, e: ProductRemoved, rules: FoldRules) -> None:
    if not _after_clearing(p.cart, e):
        return
    item, items = e.properties, []
    for i in p.cart.items:
        if i.product_id == item.product_id:
            left = i.quantity - item.quantity
            if left > 0:
                items.append(i.model_copy(update={"quantity": left}))
        else:
            items.append(i)
    _set_cart(p, items, e)


def clear_for_order(p: Profile, e: Event) -> None:
    """A new order empties the cart, unless the cart changed after it."""
    if p.cart.updated_at is None or e.occurred_at >= p.cart.updated_at:
        p.cart = Cart(cleared_at=max(e.occurred_at, p.cart.cleared_at or e.occurred_at))


def _after_clearing(cart: Cart, e: Event) -> bool:
    return cart.cleared_at is None or e.occurred_at >= cart.cleared_at


def _set_cart(p: Profile, items: list[CartItem], e: Event) -> None:
    value = sum((i.price * i.quantity for i in items), Decimal(0))
    updated = e.occurred_at if p.cart.updated_at is None else max(p.cart.updated_at, e.occurred_at)
    p.cart = Cart(items=items, value=value, updated_at=updated, cleared_at=p.cart.cleared_at)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """The newer cart; views counted together, the newest MAX_RECENT_VIEWS products kept."""
    merged.cart = absorbed.cart if _cart_time(absorbed.cart) > _cart_time(survivor.cart) else survivor.cart
    merged.product_views = survivor.product_views + absorbed.product_views
    newest: dict[str, ViewedProduct] = {}
    for view in survivor.recent_views + absorbed.recent_views:
        known = newest.get(view.product_id)
        if known is None or view.at > known.at:
            newest[view.product_id] = view
    merged.recent_views = sorted(newest.values(), key=lambda v: v.at, reverse=True)[:MAX_RECENT_VIEWS]


def _cart_time(cart: Cart) -> datetime:
    """When the cart last changed (filled or emptied); the earliest time for a cart never used."""
    return max(filter(None, (cart.updated_at, cart.cleared_at)), default=_NEVER)


FACET = Facet("cart", merge, folds={ProductViewed: fold_view, ProductAdded: fold_add, ProductRemoved: fold_remove})
