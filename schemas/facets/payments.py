"""Payments: how the customer pays (methods of captures, paid invoices and till tenders) and the payments
that failed."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, stored


class PaymentFailure(BaseModel):
    """A failed payment the profile remembers (the last ``MAX_PAYMENT_FAILURES``), for the notifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payment_id: str
    order_id: str | None = None
    amount: Decimal
    currency: str
    reason: str
    at: AwareDatetime


class PaymentsFacet(BaseModel):
    payment_failures: int = 0
    last_payment_failure_reason: str | None = None
    last_payment_failure_at: AwareDatetime | None = None
    recent_payment_failures: list[PaymentFailure] = Field(
        default_factory=list, description="The latest failed payments, oldest first, one per payment id and time."
    )
    payment_methods: dict[str, int] = Field(
        default_factory=dict, description="Payments by method: captures, paid invoices and till tenders."
    )
    preferred_payment_method: str | None = None


SEGMENT_FIELDS: list[SegmentField] = stored(
    PaymentsFacet, "payment_failures", "last_payment_failure_at", "preferred_payment_method"
)
