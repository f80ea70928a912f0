"""Order fulfilment: each recent order's status (placed, shipped, delivered, delivery_failed, returned),
carrier, tracking number and promised delivery live on its record in the orders facet
(``OrderRecord``); this module declares the segment fields read from them."""

from __future__ import annotations

from datetime import datetime

from schemas.facets.base import SegmentField, computed
from schemas.facets.orders import OrdersFacet


@computed("recent_orders")
def orders_in_transit(p: OrdersFacet) -> int:
    """Recent orders shipped and neither delivered, failed nor returned yet."""
    return sum(1 for o in p.recent_orders.values() if o.status == "shipped" and not o.cancelled)


@computed("recent_orders")
def failed_deliveries(p: OrdersFacet) -> int:
    """Recent orders whose latest delivery attempt failed."""
    return sum(1 for o in p.recent_orders.values() if o.status == "delivery_failed" and not o.cancelled)


@computed("recent_orders")
def delivery_promises(p: OrdersFacet) -> tuple[datetime, ...]:
    """The promised deliveries of the orders in transit, earliest first: a date trigger on it fires for the
    next one to pass, and one delivered meanwhile has left the list when the trigger re-reads it."""
    promised = {o.promised_by for o in p.recent_orders.values() if o.status == "shipped" and not o.cancelled}
    return tuple(sorted(at for at in promised if at is not None))


SEGMENT_FIELDS: list[SegmentField] = [orders_in_transit, failed_deliveries, delivery_promises]
