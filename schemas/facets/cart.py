"""Browsing and the cart: products viewed (the latest few), and what is in the cart now."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class CartItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    price: Decimal
    quantity: int


class Cart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[CartItem] = Field(default_factory=list)
    value: Decimal = Decimal(0)
    updated_at: AwareDatetime | None = None
    cleared_at: AwareDatetime | None = Field(
        None, description="Time of the order that emptied the cart: older cart events arriving late are ignored."
    )


class ViewedProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str
    name: str | None = None
    category: str | None = None
    price: Decimal | None = Field(None, description="As the view gave it (in the shop's currency).")
    at: AwareDatetime


class CartFacet(BaseModel):
    product_views: int = 0
    recent_views: list[ViewedProduct] = Field(default_factory=list, description="Newest first, one per product.")
    cart: Cart = Field(default_factory=Cart)


@computed("recent_views")
def last_viewed_at(p: CartFacet) -> datetime | None:
    return p.recent_views[0].at if p.recent_views else None


@computed("cart")
def cart_items(p: CartFacet) -> int:
    return sum(i.quantity for i in p.cart.items)


@computed("cart")
def cart_value(p: CartFacet) -> Decimal:
    return p.cart.value


@computed("cart")
def cart_updated_at(p: CartFacet) -> datetime | None:
    return p.cart.updated_at


SEGMENT_FIELDS: list[SegmentField] = [*stored(CartFacet, "product_views"), last_viewed_at]
SEGMENT_FIELDS += [cart_items, cart_value, cart_updated_at]
