"""The products-owned facet: every product line bought on the web or at a till becomes an owned item,
dated from the catalogue (warranty end, replacement due, successor); returns and cancellations take
items away again.

The fold reads the catalogue only through ``rules.catalog``, which the profile service fills with the
entries of the batch's products before it folds. A product the catalogue does not know yet is kept
undated (``catalogued`` false) and dated when the catalogue learns it: the service's catalogue refresh
(:func:`redate`) dates again the items of every product that changed, successors included.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from schemas.events import (
    CatalogProductProperties,
    Event,
    OrderCancelled,
    OrderCompleted,
    OrderReturned,
    PosReturn,
    PosSale,
    Product,
)
from schemas.profile import OwnedItem, Profile
from services.profile.facets import Facet
from services.profile.facets.orders import receipt_key
from services.profile.policy import FoldRules

MAX_OWNED = 50  # items kept per profile; the oldest purchase goes first


def add_months(at: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it has fewer: 31 Jan + 1 = 28/29 Feb)."""
    years, month = divmod(at.month - 1 + months, 12)
    year = at.year + years
    return at.replace(year=year, month=month + 1, day=min(at.day, calendar.monthrange(year, month + 1)[1]))


def dated(item: OwnedItem, product: CatalogProductProperties | None) -> OwnedItem:
    """The item with the dates the catalogue's entry gives it (unchanged without an entry)."""
    if product is None:
        return item
    months = product.warranty_months
    life = product.lifespan_months
    return item.model_copy(
        update={
            "category": product.category or item.category,
            "warranty_until": add_months(item.bought_at, months) if months else None,
            "replace_from": add_months(item.bought_at, life) if life else None,
            "successor_id": product.successor_id,
            "catalogued": True,
        }
    )


def products_bought(events: Iterable[Event]) -> set[str]:
    """The products the purchases among ``events`` buy: the catalogue entries their fold needs."""
    found: set[str] = set()
    for e in events:
        if isinstance(e, OrderCompleted):
            found.update(line.product_id for line in e.properties.products)
        elif isinstance(e, PosSale):
            found.update(line.product_id for line in e.properties.line_items)
    return found


def fold_order(p: Profile, e: OrderCompleted, rules: FoldRules) -> None:
    _own(p, e.properties.order_id, e.occurred_at, e.properties.products, rules)


def fold_sale(p: Profile, e: PosSale, rules: FoldRules) -> None:
    props = e.properties
    _own(p, f"pos:{props.store_id}:{props.receipt_id}", e.occurred_at, props.line_items, rules)


def _own(p: Profile, order_id: str, at: datetime, lines: Sequence[Product], rules: FoldRules) -> None:
    """Own the order's lines once (a redelivered order adds nothing), unless the order was cancelled or
    sent back before it arrived (the orders facet folded it first and remembers that)."""
    record = p.recent_orders.get(order_id)
    if record is not None and (record.cancelled or (record.status == "returned" and not record.returned_products)):
        return
    returned = set(record.returned_products) if record is not None else set()
    have = {(item.order_id, item.product_id) for item in p.owned_items}
    for line in lines:
        if (order_id, line.product_id) in have or line.product_id in returned:
            continue
        item = OwnedItem(product_id=line.product_id, order_id=order_id, bought_at=at, quantity=line.quantity,
                         category=line.category)  # fmt: skip
        p.owned_items.append(dated(item, rules.catalog.get(line.product_id)))
        have.add((order_id, line.product_id))
    _bound(p)


def fold_cancel(p: Profile, e: OrderCancelled, rules: FoldRules) -> None:
    _disown(p, e.properties.order_id, ())


def fold_order_return(p: Profile, e: OrderReturned, rules: FoldRules) -> None:
    _disown(p, e.properties.order_id, e.properties.product_ids)


def fold_pos_return(p: Profile, e: PosReturn, rules: FoldRules) -> None:
    """Goods brought back to a store: the lines of the receipt named, else the newest such products."""
    props = e.properties
    products = [line.product_id for line in props.line_items]
    if props.original_receipt_id:
        _disown(p, receipt_key(p, props.store_id, props.original_receipt_id), products)
        return
    for product_id in products:
        newest = [i for i in p.owned_items if i.product_id == product_id][-1:]
        p.owned_items[:] = [i for i in p.owned_items if i not in newest]


def _disown(p: Profile, order_id: str, products: Iterable[str]) -> None:
    """Take away the order's items of ``products`` (all of them when none is named)."""
    named = set(products)
    p.owned_items[:] = [i for i in p.owned_items if i.order_id != order_id or (named and i.product_id not in named)]


def _bound(p: Profile) -> None:
    if len(p.owned_items) > MAX_OWNED:
        p.owned_items.sort(key=lambda i: (i.bought_at, i.order_id, i.product_id))
        del p.owned_items[: len(p.owned_items) - MAX_OWNED]


def redate(p: Profile, catalog: Mapping[str, CatalogProductProperties]) -> bool:
    """Date again the owned items of the products in ``catalog`` (the catalogue changed); whether any
    item changed. Pure: the service saves the profiles it changes."""
    before = p.owned_items
    after = [dated(item, catalog.get(item.product_id)) for item in before]
    if after == before:
        return False
    p.owned_items = after
    return True


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """The items of both, each (order, product) once, oldest purchase first, the latest MAX_OWNED."""
    items = {(i.order_id, i.product_id): i for i in absorbed.owned_items}
    items.update({(i.order_id, i.product_id): i for i in survivor.owned_items})
    merged.owned_items = sorted(items.values(), key=lambda i: (i.bought_at, i.order_id, i.product_id))
    _bound(merged)


FACET = Facet(
    "products",
    merge,
    folds={
        OrderCompleted: fold_order,
        PosSale: fold_sale,
        OrderCancelled: fold_cancel,
        OrderReturned: fold_order_return,
        PosReturn: fold_pos_return,
    },
)
