"""The fulfilment facet: ``order.shipped``, ``order.delivered``, ``order.delivery_failed`` and
``order.returned`` (native events of the web shop's back office, on ``crm.raw.web.v1``) set the status
of the order's record in ``recent_orders``.

The status is the one of the latest event by its time, whatever the order of arrival (a delivery read
before its shipment stays delivered; the shipment still gives the carrier, tracking number and promise).
An event about an order not folded yet waits on a record of its own, which the order takes over when it
arrives (``orders.fulfilment_of``). Like every recent order, records are bounded by the orders facet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import DEFAULT_CURRENCY, Event, OrderDelivered, OrderDeliveryFailed, OrderReturned, OrderShipped
from schemas.facets.orders import OrderStatus
from schemas.profile import OrderRecord, Profile
from services.profile.facets import Facet
from services.profile.facets.orders import FULFILMENT_FIELDS, put_order
from services.profile.policy import FoldRules


def fold_shipped(p: Profile, e: OrderShipped, rules: FoldRules) -> None:
    props = e.properties
    given = {"carrier": props.carrier, "tracking_number": props.tracking_number, "promised_by": props.promised_by}
    _set(p, props.order_id, "shipped", e, {k: v for k, v in given.items() if v is not None}, rules)


def fold_delivered(p: Profile, e: OrderDelivered, rules: FoldRules) -> None:
    _set(p, e.properties.order_id, "delivered", e, {}, rules)


def fold_delivery_failed(p: Profile, e: OrderDeliveryFailed, rules: FoldRules) -> None:
    _set(p, e.properties.order_id, "delivery_failed", e, {}, rules)


def fold_returned(p: Profile, e: OrderReturned, rules: FoldRules) -> None:
    props = e.properties
    record = p.recent_orders.get(props.order_id)
    sent_back = (*record.returned_products, *props.product_ids) if record is not None else tuple(props.product_ids)
    _set(p, props.order_id, "returned", e, {"returned_products": tuple(dict.fromkeys(sent_back))}, rules)


def _set(p: Profile, order_id: str, status: OrderStatus, e: Event, facts: dict[str, Any], rules: FoldRules) -> None:
    """The order's record with the event's facts, and its status if the event is the latest about it."""
    record = p.recent_orders.get(order_id) or OrderRecord(at=e.occurred_at, currency=DEFAULT_CURRENCY)
    if record.status_at is None or e.occurred_at >= record.status_at:
        facts |= {"status": status, "status_at": e.occurred_at}
    put_order(p, order_id, record.model_copy(update=facts), rules)


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """An order both profiles remember (merged by the orders facet) keeps the later fulfilment news."""
    for key in survivor.recent_orders.keys() & absorbed.recent_orders.keys():
        ours, theirs = survivor.recent_orders[key], absorbed.recent_orders[key]
        if key in merged.recent_orders and _later(theirs.status_at, ours.status_at):
            news = {name: getattr(theirs, name) for name in FULFILMENT_FIELDS}
            merged.recent_orders[key] = merged.recent_orders[key].model_copy(update=news)


def _later(at: datetime | None, than: datetime | None) -> bool:
    return at is not None and (than is None or at > than)


FACET = Facet(
    "fulfilment",
    merge,
    folds={
        OrderShipped: fold_shipped,
        OrderDelivered: fold_delivered,
        OrderDeliveryFailed: fold_delivery_failed,
        OrderReturned: fold_returned,
    },
)
