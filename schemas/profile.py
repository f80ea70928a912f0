"""The unified customer profile: what ``crm.profile-changes.v1`` carries and the API returns.

The profile is the union of its facets (``schemas.facets``): one module per kind of fact, each holding
its fields and the segment fields it exposes; the profile service folds each facet's events
(``services.profile.facets``). Every field and the rule that keeps it is described in
``docs/profile.md``. Every field has a default, so profiles stored before a field existed still load;
small nested values are frozen and replaced, never changed in place (the fold copies only containers).
"""

from __future__ import annotations

from types import ModuleType

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets import (
    cart,
    cases,
    complaints,
    consent,
    context,
    engagement,
    feedback,
    fulfilment,
    groups,
    identity,
    invoices,
    loyalty,
    members,
    orders,
    payments,
    products,
    traits,
)
from schemas.facets.base import SegmentField, stored
from schemas.facets.cart import Cart, CartFacet, CartItem, ViewedProduct
from schemas.facets.cases import CaseNote, CasesFacet, ServiceCase
from schemas.facets.complaints import ComplaintAnswer, ComplaintsFacet, OpenComplaint
from schemas.facets.consent import ConsentFacet, ConsentState
from schemas.facets.context import ContextFacet, MarketingContext, Touch
from schemas.facets.engagement import EngagementFacet
from schemas.facets.feedback import FeedbackFacet, ProductReview, SurveyAnswer
from schemas.facets.groups import GroupMembership, GroupsFacet
from schemas.facets.identity import IdentityFacet, Seen
from schemas.facets.invoices import InvoicePayment, InvoicesFacet, OpenInvoice
from schemas.facets.loyalty import RFM, Loyalty, LoyaltyFacet
from schemas.facets.members import MemberEvent, MembersFacet, Membership
from schemas.facets.orders import CurrencyTotals, OrderRecord, OrdersFacet
from schemas.facets.payments import PaymentFailure, PaymentsFacet
from schemas.facets.products import OwnedItem, ProductsFacet
from schemas.facets.traits import Demographics, TraitsFacet, TraitSource

__all__ = [  # the facets' models, so readers import the whole profile contract from one place
    "RFM",
    "SEGMENT_FIELDS",
    "Cart",
    "CartItem",
    "CaseNote",
    "ComplaintAnswer",
    "ConsentState",
    "CurrencyTotals",
    "Demographics",
    "GroupMembership",
    "InvoicePayment",
    "Loyalty",
    "MarketingContext",
    "MemberEvent",
    "Membership",
    "OpenComplaint",
    "OpenInvoice",
    "OrderRecord",
    "OwnedItem",
    "PaymentFailure",
    "ProductReview",
    "Profile",
    "Seen",
    "ServiceCase",
    "SurveyAnswer",
    "Touch",
    "TraitSource",
    "ViewedProduct",
]


class ProfileCore(BaseModel):
    """What every profile has whatever its facets: its id, version and times, and where it went if merged."""

    profile_id: str
    version: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime
    merged_into: str | None = Field(
        None,
        description="Set when this profile was merged into another one: that one holds its history and "
        "identifiers now, and this one stays empty.",
    )


# pydantic orders the fields of a model with several bases from the last base to the first: listed in
# reverse, the document reads core, identity, traits, context, groups, consent, orders, cart, …
class Profile(
    MembersFacet,  # association members
    FeedbackFacet,
    CasesFacet,
    ProductsFacet,  # products owned
    EngagementFacet,
    InvoicesFacet,
    LoyaltyFacet,
    PaymentsFacet,
    ComplaintsFacet,
    CartFacet,
    OrdersFacet,
    ConsentFacet,
    GroupsFacet,
    ContextFacet,
    TraitsFacet,
    IdentityFacet,
    ProfileCore,
):
    """Folded from events by ``services.profile.fold``; ``version`` counts the events folded in."""

    model_config = ConfigDict(extra="forbid")


FACETS: tuple[ModuleType, ...] = (
    identity,
    traits,
    context,
    groups,
    consent,
    orders,
    cart,
    complaints,
    payments,
    loyalty,
    invoices,
    engagement,
    products,
    fulfilment,
    members,
    cases,
    feedback,
)
SEGMENT_FIELDS: tuple[SegmentField, ...] = (
    *stored(ProfileCore, "profile_id", "version", "created_at", "updated_at"),
    *(field for facet in FACETS for field in facet.SEGMENT_FIELDS),
)
