"""Pure folding of events into a profile: ``fold_events(profile, events) -> profile``.

Deterministic (no clock: times come from the events), so a replay of the same events yields the same
profile, version included. Orders are counted once per order id, whatever the delivery count.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from schemas.events import (
    CartProduct,
    CaseClosed,
    ComplaintResponded,
    Event,
    Identify,
    OrderCompleted,
    PaymentFailed,
    PosSale,
    ProductAdded,
    ProductRemoved,
    SocialMessage,
)
from schemas.profile import Cart, CartItem, OpenComplaint, Profile, TraitSource

MAX_IDS_PER_KIND = 50
COMPLAINT_TEXT_CHARS = 500  # kept on the profile for the alert; the full text stays in the event
_TRAIT_FIELDS = ("name", "first_name", "last_name", "age", "gender", "city", "country", "children")


def new_profile(profile_id: str, first: Event) -> Profile:
    return Profile(profile_id=profile_id, created_at=first.occurred_at, updated_at=first.occurred_at)


def fold_events(profile: Profile | None, profile_id: str, events: Iterable[Event]) -> Profile:
    work = _working_copy(profile) if profile is not None else None
    for event in events:
        if work is None:
            work = new_profile(profile_id, event)
        fold_event(work, event)
    if work is None:
        raise ValueError("fold_events needs a profile or at least one event")
    return work


def _working_copy(p: Profile) -> Profile:
    """A copy safe to mutate: fold_event mutates only these containers in place (carts and cart items
    are replaced, never changed), so copying them is enough and much cheaper than a deep copy."""
    return p.model_copy(
        update={
            "identifiers": {kind: list(values) for kind, values in p.identifiers.items()},
            "traits": dict(p.traits),
            "trait_sources": dict(p.trait_sources),
            "order_ids": list(p.order_ids),
            "open_complaints": list(p.open_complaints),
        }
    )


def fold_event(p: Profile, e: Event) -> None:
    """Apply one event to the working copy ``p`` (mutated in place; callers go through fold_events)."""
    p.version += 1
    p.updated_at = max(p.updated_at, e.occurred_at)
    for kind, value in e.identifiers().items():
        _add_identifier(p, kind, value)
    match e:
        case Identify():
            _apply_traits(p, e)
        case ProductAdded() if _after_clearing(p.cart, e):
            _cart_add(p, e.properties, e)
        case ProductRemoved() if _after_clearing(p.cart, e):
            _cart_remove(p, e.properties, e)
        case OrderCompleted():
            if _count_order(p, e.properties.order_id, e.properties.order_amount, e.properties.currency, e):
                p.web_orders += 1
                if p.cart.updated_at is None or e.occurred_at >= p.cart.updated_at:
                    p.cart = Cart(cleared_at=max(e.occurred_at, p.cart.cleared_at or e.occurred_at))
        case PosSale():
            props = e.properties
            if _count_order(p, f"pos:{props.store_id}:{props.receipt_id}", props.total, props.currency, e):
                p.pos_orders += 1
        case PaymentFailed():
            p.payment_failures += 1
            p.last_payment_failure_reason = e.properties.reason_code
        case SocialMessage():
            _complaint(p, e)
        case ComplaintResponded() | CaseClosed():
            p.open_complaints = [c for c in p.open_complaints if c.message_id != e.properties.message_id]
        case _:
            pass


def _after_clearing(cart: Cart, e: Event) -> bool:
    """Events arrive roughly, not strictly, in time order: a cart change older than the order that
    emptied the cart belongs to that order and must not refill the cart (an order older than the
    cart's last change leaves the newer cart alone, see OrderCompleted)."""
    return cart.cleared_at is None or e.occurred_at >= cart.cleared_at


def _add_identifier(p: Profile, kind: str, value: str) -> None:
    values = p.identifiers.setdefault(kind, [])
    if value not in values and len(values) < MAX_IDS_PER_KIND:
        values.append(value)


def _apply_traits(p: Profile, e: Identify) -> None:
    """Latest wins per trait, by event time: an older identify arriving late changes nothing newer."""
    traits = e.traits
    for field in _TRAIT_FIELDS:
        value = getattr(traits, field)
        known = p.trait_sources.get(field)
        if value is not None and (known is None or e.occurred_at >= known.at):
            p.traits[field] = value
            p.trait_sources[field] = TraitSource(source=e.source, at=e.occurred_at)


def _count_order(p: Profile, order_id: str, amount: Decimal, currency: str, e: Event) -> bool:
    if order_id in p.order_ids:
        return False
    p.order_ids.append(order_id)
    p.order_count += 1
    p.total_spent += amount
    p.currency = p.currency or currency
    at = e.occurred_at
    p.first_order_at = at if p.first_order_at is None else min(p.first_order_at, at)
    p.last_order_at = at if p.last_order_at is None else max(p.last_order_at, at)
    return True


def _cart_add(p: Profile, item: CartProduct, e: Event) -> None:
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


def _cart_remove(p: Profile, item: CartProduct, e: Event) -> None:
    items = []
    for i in p.cart.items:
        if i.product_id == item.product_id:
            left = i.quantity - item.quantity
            if left > 0:
                items.append(i.model_copy(update={"quantity": left}))
        else:
            items.append(i)
    _set_cart(p, items, e)


def _set_cart(p: Profile, items: list[CartItem], e: Event) -> None:
    value = sum((i.price * i.quantity for i in items), Decimal(0))
    updated = e.occurred_at if p.cart.updated_at is None else max(p.cart.updated_at, e.occurred_at)
    p.cart = Cart(items=items, value=value, updated_at=updated, cleared_at=p.cart.cleared_at)


def _complaint(p: Profile, e: SocialMessage) -> None:
    props = e.properties
    if e.is_complaint and all(c.message_id != props.message_id for c in p.open_complaints):
        p.open_complaints.append(
            OpenComplaint(
                message_id=props.message_id,
                platform=props.platform,
                handle=props.handle,
                text=props.text[:COMPLAINT_TEXT_CHARS],
                sentiment=props.sentiment,
                at=e.occurred_at,
            )
        )
        p.complaints_total += 1
