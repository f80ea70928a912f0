"""The invoices facet: invoices issued and not yet paid in full, folded from ``payment.invoice_issued`` and
``payment.invoice_paid``.

Payments may be partial and may overtake their invoice: a payment for an invoice not seen yet waits in
``open_invoices`` (no ``issued_at``) and counts when the invoice arrives, so the result does not depend on
the order events arrive in. A payment counts once per event id; an invoice paid in full closes, and its id
is remembered (the last ``MAX_PAID_IDS``) so a redelivered invoice or payment does not reopen it.
"""

from __future__ import annotations

from decimal import Decimal

from schemas.events import InvoiceIssued, InvoicePaid
from schemas.facets.invoices import InvoicePayment, OpenInvoice
from schemas.profile import Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_OPEN_INVOICES = 100  # more open at once: the payments waiting longest go first, then the invoice due last
MAX_PAYMENTS_PER_INVOICE = 50  # a payment over this is not counted (instalments, not a stream)
MAX_PAID_IDS = 200


def fold_issued(p: Profile, e: InvoiceIssued, rules: FoldRules) -> None:
    props = e.properties
    known = _find(p, props.invoice_id)
    if props.invoice_id in p.paid_invoice_ids or (known is not None and known.issued_at is not None):
        return  # a redelivery
    p.invoices_issued += 1
    invoice = OpenInvoice(
        invoice_id=props.invoice_id,
        order_id=props.order_id,
        amount=props.amount,
        currency=props.currency,
        issued_at=e.occurred_at,
        due_at=props.due_at,
        payments=known.payments if known is not None else (),
    )
    _put(p, invoice)


def fold_paid(p: Profile, e: InvoicePaid, rules: FoldRules) -> None:
    props = e.properties
    if props.invoice_id in p.paid_invoice_ids:
        return
    known = _find(p, props.invoice_id) or OpenInvoice(invoice_id=props.invoice_id, currency=props.currency)
    if len(known.payments) >= MAX_PAYMENTS_PER_INVOICE or any(x.event_id == e.event_id for x in known.payments):
        return
    payment = InvoicePayment(event_id=e.event_id, amount=props.amount, currency=props.currency, at=e.occurred_at)
    _put(p, known.model_copy(update={"payments": (*known.payments, payment)}))


def _find(p: Profile, invoice_id: str) -> OpenInvoice | None:
    return next((i for i in p.open_invoices if i.invoice_id == invoice_id), None)


def _put(p: Profile, invoice: OpenInvoice) -> None:
    """Store ``invoice`` (its ``paid`` recomputed) in place of the entry of its id, or close it when paid."""
    payments = tuple(sorted(invoice.payments, key=lambda x: (x.at, x.event_id)))
    paid = sum((x.amount for x in payments if x.currency == invoice.currency), Decimal(0))
    invoice = invoice.model_copy(update={"payments": payments, "paid": paid})
    others = [i for i in p.open_invoices if i.invoice_id != invoice.invoice_id]
    if invoice.amount is not None and paid >= invoice.amount:
        p.invoices_paid += 1
        p.paid_invoice_ids = [*p.paid_invoice_ids, invoice.invoice_id][-MAX_PAID_IDS:]
        p.open_invoices = others
    else:
        p.open_invoices = _bounded(sorted([*others, invoice], key=lambda i: i.invoice_id))


def _bounded(invoices: list[OpenInvoice]) -> list[OpenInvoice]:
    """At most ``MAX_OPEN_INVOICES``: payments without their invoice go first (the oldest first), then the
    invoices due last (the latest overdue ones are what the segments and the alert need)."""
    over = len(invoices) - MAX_OPEN_INVOICES
    if over <= 0:
        return invoices
    dropped = sorted(invoices, key=_drop_order)[:over]
    return [i for i in invoices if i not in dropped]


def _drop_order(i: OpenInvoice) -> tuple[bool, float]:
    if i.issued_at is None:
        return (False, i.payments[0].at.timestamp())
    return (True, -(i.due_at or i.issued_at).timestamp())


def _combined(ours: OpenInvoice | None, theirs: OpenInvoice) -> OpenInvoice:
    """One invoice known to both profiles: the invoice from whichever has it, the payments of both."""
    if ours is None:
        return theirs
    base = ours if ours.issued_at is not None or theirs.issued_at is None else theirs
    payments = {x.event_id: x for x in (*ours.payments, *theirs.payments)}
    return base.model_copy(update={"payments": tuple(payments.values())[:MAX_PAYMENTS_PER_INVOICE]})


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts summed (an invoice both issued or both paid counts once), paid ids united, open invoices
    united by id with the payments of both; one paid in either profile is closed, one whose payments the
    other profile held is paid now if they cover it."""
    both_paid = set(survivor.paid_invoice_ids) & set(absorbed.paid_invoice_ids)
    both_issued = _issued_ids(survivor) & _issued_ids(absorbed)
    merged.invoices_issued = survivor.invoices_issued + absorbed.invoices_issued - len(both_issued)
    merged.invoices_paid = survivor.invoices_paid + absorbed.invoices_paid - len(both_paid)
    paid_ids = list(dict.fromkeys([*absorbed.paid_invoice_ids, *survivor.paid_invoice_ids]))
    merged.paid_invoice_ids = paid_ids[-MAX_PAID_IDS:]
    merged.open_invoices = []
    for invoice in [*survivor.open_invoices, *absorbed.open_invoices]:
        if invoice.invoice_id not in paid_ids:
            _put(merged, _combined(_find(merged, invoice.invoice_id), invoice))


def _issued_ids(p: Profile) -> set[str]:
    return {i.invoice_id for i in p.open_invoices if i.issued_at is not None} | set(p.paid_invoice_ids)


FACET = Facet("invoices", merge, folds={InvoiceIssued: fold_issued, InvoicePaid: fold_paid})
