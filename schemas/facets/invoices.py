"""Invoices: the customer's open invoices (issued and not paid in full), the payments they have had, and
when the oldest falls due; a segment or journey reads whether the customer is in arrears from them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.facets.base import SegmentField, computed, stored


class InvoicePayment(BaseModel):
    """One payment towards an invoice, once per event id (a redelivery is not paid twice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    amount: Decimal
    currency: str
    at: AwareDatetime


class OpenInvoice(BaseModel):
    """An invoice not paid in full; ``issued_at`` None: only payments for it have arrived (they overtook it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: str
    order_id: str | None = None
    amount: Decimal | None = Field(None, description="None until the invoice itself arrives.")
    currency: str
    issued_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    paid: Decimal = Field(Decimal(0), description="Its payments in its currency (another currency pays none of it).")
    payments: tuple[InvoicePayment, ...] = Field((), description="The payments towards it, oldest first.")

    @property
    def outstanding(self) -> Decimal:
        return max((self.amount or Decimal(0)) - self.paid, Decimal(0))


class InvoicesFacet(BaseModel):
    open_invoices: list[OpenInvoice] = Field(
        default_factory=list, description="Invoices not paid in full, and payments waiting for their invoice."
    )
    paid_invoice_ids: list[str] = Field(
        default_factory=list, description="The latest invoices paid in full: a redelivery does not reopen them."
    )
    invoices_issued: int = 0
    invoices_paid: int = Field(0, description="Invoices paid in full.")


def issued(p: InvoicesFacet) -> list[OpenInvoice]:
    """The open invoices that have arrived (not only their payments), oldest due first (no due date last)."""
    found = [i for i in p.open_invoices if i.issued_at is not None]
    return sorted(found, key=lambda i: (i.due_at is None, i.due_at or i.issued_at, i.invoice_id))


@computed("open_invoices")
def open_invoice_count(p: InvoicesFacet) -> int:
    return len(issued(p))


@computed("open_invoices")
def oldest_invoice_due_at(p: InvoicesFacet) -> datetime | None:
    """When the open invoice due first falls due: ``days_since(oldest_invoice_due_at) >= 1`` is overdue."""
    return next((i.due_at for i in issued(p) if i.due_at is not None), None)


@computed("open_invoices")
def open_invoice_currency(p: InvoicesFacet) -> str | None:
    """The currency of the open invoice due first: the one ``open_invoice_amount`` is in."""
    return next((i.currency for i in issued(p)), None)


@computed("open_invoices")
def open_invoice_amount(p: InvoicesFacet) -> Decimal:
    """What is still owed on the open invoices in ``open_invoice_currency`` (others are not added in)."""
    invoices = issued(p)
    return sum((i.outstanding for i in invoices if i.currency == invoices[0].currency), Decimal(0))


SEGMENT_FIELDS: list[SegmentField] = [open_invoice_count, open_invoice_amount, open_invoice_currency]
SEGMENT_FIELDS += [oldest_invoice_due_at, *stored(InvoicesFacet, "invoices_issued", "invoices_paid")]
