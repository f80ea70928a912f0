"""The payments facet: payments by method (captures, paid invoices, till tenders, counted by
:func:`count_methods`) and the preferred method, and the payments that failed (the latest
``MAX_PAYMENT_FAILURES`` remembered for the notifier's alerts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from schemas.events import InvoicePaid, PaymentCaptured, PaymentFailed, Tender
from schemas.profile import PaymentFailure, Profile
from services.profile.facets import Facet
from services.profile.policy import FoldRules

MAX_PAYMENT_FAILURES = 20


def fold_failure(p: Profile, e: PaymentFailed, rules: FoldRules) -> None:
    p.payment_failures += 1
    props = e.properties
    if p.last_payment_failure_at is None or e.occurred_at >= p.last_payment_failure_at:
        p.last_payment_failure_reason = props.reason_code
        p.last_payment_failure_at = e.occurred_at
    failure = PaymentFailure(
        payment_id=props.payment_id,
        order_id=props.order_id,
        amount=props.amount,
        currency=props.currency,
        reason=props.reason_code,
        at=e.occurred_at,
    )
    p.recent_payment_failures = remember_failures(p.recent_payment_failures, [failure])


def fold_payment(p: Profile, e: PaymentCaptured | InvoicePaid, rules: FoldRules) -> None:
    count_methods(p, [e.properties.method])


def remember_failures(known: list[PaymentFailure], new: Iterable[PaymentFailure]) -> list[PaymentFailure]:
    """The latest ``MAX_PAYMENT_FAILURES`` failures by event time, oldest first, one per payment id and time."""
    unique = {(f.payment_id, f.at): f for f in [*known, *new]}
    return sorted(unique.values(), key=lambda f: (f.at, f.payment_id))[-MAX_PAYMENT_FAILURES:]


def count_methods(p: Profile, methods: Iterable[str]) -> None:
    """Count payments by method (a method once per payment); the preferred one is the most used (a tie:
    the first by name, so the order events arrive in does not matter)."""
    for method in set(methods):
        p.payment_methods[method] = p.payment_methods.get(method, 0) + 1
    p.preferred_payment_method = preferred_method(p.payment_methods)


class Paid(NamedTuple):
    """How an order was paid: its payment method (None: not said) and the part paid with loyalty points."""

    method: str | None
    with_points: Decimal = Decimal(0)


def main_tender(tenders: Sequence[Tender], redemption: str) -> str | None:
    """The method of the tender paying most of a receipt (a tie: the first by name), ``redemption`` (paying
    with points) left out."""
    paying: dict[str, Decimal] = {}
    for t in tenders:
        if t.method != redemption:
            paying[t.method] = paying.get(t.method, Decimal(0)) + t.amount
    return min(paying, key=lambda m: (-paying[m], m)) if paying else None


def preferred_method(counts: dict[str, int]) -> str | None:
    return min(counts, key=lambda m: (-counts[m], m)) if counts else None


def merge(merged: Profile, survivor: Profile, absorbed: Profile, rules: FoldRules) -> None:
    """Counts summed, failures united, the later failure's time and reason."""
    merged.payment_failures = survivor.payment_failures + absorbed.payment_failures
    ours, theirs = survivor.last_payment_failure_at, absorbed.last_payment_failure_at
    later = absorbed if theirs is not None and (ours is None or theirs > ours) else survivor
    merged.last_payment_failure_at = later.last_payment_failure_at
    merged.last_payment_failure_reason = (
        later.last_payment_failure_reason
        or survivor.last_payment_failure_reason
        or absorbed.last_payment_failure_reason
    )
    merged.recent_payment_failures = remember_failures(
        survivor.recent_payment_failures, absorbed.recent_payment_failures
    )
    merged.payment_methods = dict(Counter(survivor.payment_methods) + Counter(absorbed.payment_methods))
    merged.preferred_payment_method = preferred_method(merged.payment_methods)


FACET = Facet(
    "payments", merge, folds={PaymentFailed: fold_failure, PaymentCaptured: fold_payment, InvoicePaid: fold_payment}
)
