"""The invoices facet: open invoices folded from issued and paid (partial payments, payments before their
invoice, redeliveries), its segment fields, merges, export and erasure."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from crmhub.core.conditions.fields import source_view
from crmhub.core.conditions.language import compile_segment, evaluate
from crmhub.core.sql import make_engine
from schemas.events import Event
from schemas.profile import Profile
from services.profile.facets.invoices import MAX_OPEN_INVOICES
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.store import ProfileStore
from tests.unit import factories as f
from tests.unit.profile import events as ev

DAY = 24 * 60  # minutes


def test_partial_payments_leave_the_invoice_open_until_paid_in_full() -> None:
    p = fold_events(
        None, "P", [ev.invoice("i-1", "100.00", due_in_days=14), ev.invoice_paid("i-1", "40.00", minutes=5)]
    )
    (open_,) = p.open_invoices
    assert (open_.amount, open_.paid, open_.order_id, open_.due_at) == (
        Decimal("100.00"), Decimal("40.00"), "o-i-1", f.at(14 * DAY),
    )  # fmt: skip
    p = fold_events(p, "P", [ev.invoice_paid("i-1", "60.00", minutes=9)])
    assert (p.open_invoices, p.paid_invoice_ids, p.invoices_issued, p.invoices_paid) == ([], ["i-1"], 1, 1)


def test_the_fold_does_not_depend_on_the_order_events_arrive_in() -> None:
    events = [
        ev.invoice("i-1", "100.00", minutes=0),
        ev.invoice_paid("i-1", "30.00", minutes=10),
        ev.invoice_paid("i-1", "70.00", minutes=20),
        ev.invoice("i-2", "50.00", minutes=30),
        ev.invoice_paid("i-2", "20.00", minutes=40),
        ev.invoice_paid("i-3", "5.00", minutes=50),  # its invoice has not come (yet)
    ]
    results = {_facet(fold_events(None, "P", list(order))) for order in itertools.permutations(events)}
    assert len(results) == 1
    p = fold_events(None, "P", events[::-1])
    assert [(i.invoice_id, i.issued_at is not None, i.paid) for i in p.open_invoices] == [
        ("i-2", True, Decimal("20.00")), ("i-3", False, Decimal("5.00")),
    ]  # fmt: skip
    assert (p.invoices_issued, p.invoices_paid) == (2, 1)


def _facet(p: Profile) -> str:
    return p.model_dump_json(include={"open_invoices", "paid_invoice_ids", "invoices_issued", "invoices_paid"})


def test_a_redelivered_invoice_or_payment_counts_once_and_a_paid_invoice_stays_closed() -> None:
    issued, paid = ev.invoice("i-1", "100.00"), ev.invoice_paid("i-1", "50.00", minutes=1)
    p = fold_events(None, "P", [issued, paid, paid, issued])
    assert (p.open_invoices[0].paid, p.invoices_issued) == (Decimal("50.00"), 1)
    p = fold_events(p, "P", [ev.invoice_paid("i-1", "50.00", minutes=2), issued, paid])
    assert (p.open_invoices, p.invoices_issued, p.invoices_paid) == ([], 1, 1)


def test_a_payment_in_another_currency_pays_none_of_the_invoice() -> None:
    p = fold_events(None, "P", [ev.invoice("i-1", "100.00"), ev.invoice_paid("i-1", "100.00", currency="USD")])
    assert p.open_invoices[0].paid == Decimal(0) and len(p.open_invoices[0].payments) == 1


def test_open_invoices_are_bounded_dropping_the_ones_due_last() -> None:
    many = [ev.invoice(f"i-{n:03d}", "1.00", due_in_days=n) for n in range(MAX_OPEN_INVOICES + 5)]
    p = fold_events(None, "P", many)
    assert len(p.open_invoices) == MAX_OPEN_INVOICES
    assert p.open_invoices[-1].invoice_id == f"i-{MAX_OPEN_INVOICES - 1:03d}"  # the 5 due last went


def test_segment_fields_and_the_overdue_segment_follow_the_clock() -> None:
    events = [
        ev.invoice("i-1", "100.00", due_in_days=1, minutes=0),
        ev.invoice_paid("i-1", "25.00", minutes=5),
        ev.invoice("i-2", "40.00", due_in_days=10, minutes=10),
        ev.invoice("i-3", "9.00", due_in_days=None, currency="USD", minutes=20),
    ]
    view = source_view(fold_events(None, "P", events))
    assert (view["open_invoice_count"], view["open_invoice_amount"], view["open_invoice_currency"]) == (
        3, Decimal("115.00"), "EUR",
    )  # fmt: skip
    assert (view["oldest_invoice_due_at"], view["invoices_issued"], view["invoices_paid"]) == (f.at(DAY), 3, 0)
    overdue = compile_segment("invoice_overdue", "open_invoice_count > 0 and days_since(oldest_invoice_due_at) >= 1")
    due = f.at(DAY)
    assert evaluate([overdue], view, due + timedelta(days=1) - timedelta(seconds=1)) == set()
    assert evaluate([overdue], view, due + timedelta(days=1)) == {"invoice_overdue"}  # no event: the clock
    assert overdue.clock and overdue.clock[0].field == "oldest_invoice_due_at"
    paid = source_view(fold_events(None, "P", [*events, ev.invoice_paid("i-1", "75.00", minutes=30)]))
    assert paid["oldest_invoice_due_at"] == f.at(10 * DAY + 10)  # the next one due
    assert evaluate([overdue], paid, due + timedelta(days=1)) == set()


def test_merge_unites_invoices_with_the_payments_of_both_and_counts_each_once() -> None:
    survivor = fold_events(None, "S", [ev.invoice("i-1", "100.00"), ev.invoice("i-2", "10.00", minutes=1)])
    absorbed_events: list[Event] = [
        ev.invoice("i-2", "10.00", minutes=1),  # the same invoice, known to both
        ev.invoice_paid("i-1", "100.00", minutes=2),  # pays the survivor's invoice in full
        ev.invoice("i-3", "5.00", minutes=3),
        ev.invoice_paid("i-3", "5.00", minutes=4),
    ]
    absorbed = fold_events(None, "A", absorbed_events)
    merged = merge_profiles(survivor, absorbed)
    assert [i.invoice_id for i in merged.open_invoices] == ["i-2"]
    assert (merged.invoices_issued, merged.invoices_paid) == (3, 2)
    assert set(merged.paid_invoice_ids) == {"i-1", "i-3"}
    folded = fold_events(None, "S", [ev.invoice("i-1", "100.00"), ev.invoice("i-2", "10.00", minutes=1)])
    folded = fold_events(folded, "S", absorbed_events)  # the same events folded into one profile
    assert merged.open_invoices == folded.open_invoices and set(folded.paid_invoice_ids) == {"i-1", "i-3"}
    assert (folded.invoices_issued, folded.invoices_paid) == (3, 2)


def test_export_carries_the_open_invoices_and_erasure_removes_them(tmp_path: Path) -> None:
    p = fold_events(None, "P", [ev.invoice("i-1", "100.00"), ev.invoice_paid("i-1", "40.00", minutes=1)])
    exported = p.model_dump(mode="json")  # what /v1/profiles/{id}/export returns as its profile
    assert exported["open_invoices"][0] | {"payments": []} == {
        "invoice_id": "i-1", "order_id": "o-i-1", "amount": "100.00", "paid": "40.00", "currency": "EUR",
        "issued_at": "2025-03-14T09:00:00Z", "due_at": "2025-04-13T09:00:00Z", "payments": [],
    }  # fmt: skip
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    store.save([p], [], "g", "i", {})
    assert store.load(["P"])["P"].open_invoices == p.open_invoices
    store.erase(["P"], f.at(5))
    assert store.load(["P"]) == {}
