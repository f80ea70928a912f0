"""Products owned: every product bought (web order lines, till receipt lines) is an owned item with the
dates the catalogue gives it, its warranty's end and when its owner is due a replacement; returns take it
away again. The catalogue (``schemas.readmodels.catalog``) is looked up by the profile service and handed
to the fold; an item whose product the catalogue did not know yet has no dates until it does."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed


class OwnedItem(BaseModel):
    """One product line bought (of any quantity), as long as it has not been returned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: str
    order_id: str = Field(description='The order: a web order id, or "pos:<store>:<receipt>" for a till sale.')
    bought_at: AwareDatetime
    quantity: int = 1
    category: str | None = Field(None, description="The catalogue's, else the order line's.")
    warranty_until: AwareDatetime | None = Field(None, description="bought_at + the product's warranty months.")
    replace_from: AwareDatetime | None = Field(None, description="bought_at + the product's expected lifespan.")
    successor_id: str | None = Field(None, description="The product the catalogue names as this one's successor.")
    catalogued: bool = Field(False, description="The catalogue knew the product when the item was last dated.")


class ProductsFacet(BaseModel):
    owned_items: list[OwnedItem] = Field(
        default_factory=list, description="Products owned, oldest purchase first (the latest ``MAX_OWNED``)."
    )


@computed("owned_items")
def owned_count(p: ProductsFacet) -> int:
    return len(p.owned_items)


@computed("owned_items")
def owned_products(p: ProductsFacet) -> tuple[str, ...]:
    return tuple(sorted({item.product_id for item in p.owned_items}))


@computed("owned_items")
def warranty_ends(p: ProductsFacet) -> tuple[datetime, ...]:
    """Every owned item's warranty end, earliest first: a date trigger takes the next one to come."""
    return tuple(sorted({item.warranty_until for item in p.owned_items if item.warranty_until}))


@computed("owned_items")
def replacements_due(p: ProductsFacet) -> tuple[datetime, ...]:
    """When owned items reach the end of their expected life, earliest first."""
    return tuple(sorted({item.replace_from for item in p.owned_items if item.replace_from}))


@computed("owned_items")
def successor_available(p: ProductsFacet) -> bool:
    """An owned product has a successor in the catalogue (that the customer does not own yet)."""
    owned = {item.product_id for item in p.owned_items}
    return any(item.successor_id and item.successor_id not in owned for item in p.owned_items)


@computed("owned_items")
def successor_products(p: ProductsFacet) -> tuple[str, ...]:
    owned = {item.product_id for item in p.owned_items}
    return tuple(sorted({i.successor_id for i in p.owned_items if i.successor_id and i.successor_id not in owned}))


SEGMENT_FIELDS: list[SegmentField] = [
    owned_count,
    owned_products,
    warranty_ends,
    replacements_due,
    successor_available,
    successor_products,
]
