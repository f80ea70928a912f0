"""The members facet: the membership (terms, ends, member since) and the association's events folded in any
order, its segment fields and shipped segments as the clock moves, merges, export and erasure."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from crmhub.core.conditions.fields import source_view
from crmhub.core.conditions.language import compile_segment, evaluate
from crmhub.core.sql import make_engine
from schemas.profile import Profile
from services.profile.facets.members import MAX_MEMBER_EVENTS
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.store import ProfileStore
from services.segmenter.rules import load_definitions
from tests.unit import factories as f
from tests.unit.profile import events as ev

DAY = 24 * 60  # minutes
MEMBERS = [d for d in load_definitions() if d.name in ("membership_renewal_due", "members_lapsed")]
ENGAGED = [d for d in load_definitions() if d.name == "engaged_members_unregistered"]


def test_a_term_gives_status_plan_exact_fee_expiry_and_member_since_and_a_lapse_keeps_the_last_term() -> None:
    p = fold_events(None, "P", [ev.membership("started", expires_in_days=365)])
    m = p.membership
    assert m is not None
    assert (m.status, m.plan, m.fee, m.currency, m.expires_at, m.since) == (
        "active", "standard", Decimal("60.00"), "EUR", f.at(365 * DAY), f.at(0),
    )  # fmt: skip
    p = fold_events(p, "P", [ev.membership("renewed", "reduced", 365, minutes=360 * DAY)])
    assert p.membership is not None and p.membership.expires_at == f.at(725 * DAY) and p.membership.plan == "reduced"
    p = fold_events(p, "P", [ev.membership("lapsed", minutes=730 * DAY)])
    m = p.membership
    assert m is not None and (m.status, m.plan, m.expires_at, m.since) == (
        "lapsed",
        "reduced",
        f.at(725 * DAY),
        f.at(0),
    )
    p = fold_events(p, "P", [ev.membership("started", minutes=800 * DAY)])  # rejoins: member since stays
    assert p.membership is not None and (p.membership.status, p.membership.since) == ("active", f.at(0))


def test_the_membership_does_not_depend_on_arrival_order_and_a_redelivery_changes_nothing() -> None:
    events = [
        ev.membership("started", minutes=0),
        ev.membership("renewed", "family", 365, minutes=300 * DAY),
        ev.membership("cancelled", minutes=400 * DAY),
        ev.membership("lapsed", minutes=400 * DAY),  # the same time as the cancellation: cancelled wins
    ]
    results = {_facet(fold_events(None, "P", list(order))) for order in itertools.permutations(events)}
    assert len(results) == 1
    p = fold_events(None, "P", events)
    assert fold_events(p, "P", events).membership == p.membership
    assert p.membership is not None and (p.membership.status, p.membership.plan) == ("cancelled", "family")


def _facet(p: Profile) -> str:
    return p.model_dump_json(include={"membership", "member_events"})


def test_registrations_cancellations_and_attendance_in_any_order() -> None:
    events = [
        ev.association_event("registered", "agm", minutes=0),
        ev.association_event("cancelled", "agm", minutes=10),
        ev.association_event("registered", "agm", minutes=20),  # registered again
        ev.association_event("registered", "talk", starts_in_days=-1, minutes=30),
        ev.association_event("attended", "talk", starts_in_days=-1, minutes=40),
        ev.association_event("registered", "gala", starts_in_days=60, minutes=50),
        ev.association_event("cancelled", "gala", starts_in_days=60, minutes=60),
        ev.association_event("attended", "evening", starts_in_days=0, minutes=70),  # a walk-in
    ]
    rng = random.Random(4)
    orders = [events, events[::-1], *(rng.sample(events, len(events)) for _ in range(40))]
    assert len({_facet(fold_events(None, "P", order)) for order in orders}) == 1
    view = source_view(fold_events(None, "P", events))
    assert view["registered_events"] == ("talk", "evening", "agm")  # by start; the gala was cancelled
    assert (view["events_attended"], view["last_event_attended_at"]) == (2, f.at(70))
    assert view["registered_event_starts"] == (f.at(30 * DAY),)  # registered, not attended yet
    assert view["latest_registered_event_at"] == f.at(30 * DAY)
    assert view["member_engagement"] == 4  # agm 1, talk 1 + 1, evening 1 (attended, no registration)


def test_engagement_counts_the_365_days_up_to_the_latest_interaction() -> None:
    old = [ev.association_event("attended", f"old-{n}", starts_in_days=n, minutes=n * DAY) for n in range(3)]
    recent = ev.association_event("attended", "new", starts_in_days=366, minutes=366 * DAY)
    assert source_view(fold_events(None, "P", old))["member_engagement"] == 3
    assert source_view(fold_events(None, "P", [*old, recent]))["member_engagement"] == 2  # old-0, old-1 fell out


def test_the_association_events_kept_are_bounded_to_the_latest_starts() -> None:
    many = [ev.association_event("registered", f"e-{n:03d}", starts_in_days=n) for n in range(MAX_MEMBER_EVENTS + 5)]
    p = fold_events(None, "P", many)
    assert len(p.member_events) == MAX_MEMBER_EVENTS and p.member_events[0].event_id == "e-005"


def test_renewal_due_and_lapsed_follow_the_clock_and_tenure_advances_on_the_anniversary() -> None:
    p = fold_events(None, "P", [ev.membership("started", expires_in_days=365)])
    view = source_view(p)
    expiry = f.at(365 * DAY)
    second = timedelta(seconds=1)
    assert evaluate(MEMBERS, view, expiry - timedelta(days=30) - second) == set()
    assert evaluate(MEMBERS, view, expiry - timedelta(days=30)) == {"membership_renewal_due"}  # no event: the clock
    assert evaluate(MEMBERS, view, expiry - second) == {"membership_renewal_due"}
    assert evaluate(MEMBERS, view, expiry) == {"members_lapsed"}  # ended without a renewal
    lapsed = source_view(fold_events(p, "P", [ev.membership("lapsed", minutes=366 * DAY)]))
    assert evaluate(MEMBERS, lapsed, expiry + timedelta(days=1)) == {"members_lapsed"}
    renewed = source_view(fold_events(p, "P", [ev.membership("renewed", expires_in_days=365, minutes=350 * DAY)]))
    assert evaluate(MEMBERS, renewed, expiry) == set()
    cancelled = source_view(fold_events(p, "P", [ev.membership("cancelled", minutes=340 * DAY)]))
    assert evaluate(MEMBERS, cancelled, expiry - timedelta(days=10)) == set()  # no reminder, no win-back
    tenure = compile_segment("tenure", "years_since(member_since) >= 1")
    assert evaluate([tenure], view, f.at(365 * DAY) - second) == set()
    assert evaluate([tenure], view, f.at(365 * DAY)) == {"tenure"}


def test_engaged_members_without_a_registration_to_come() -> None:
    came = [
        ev.membership("started", minutes=0),
        *(ev.association_event("registered", f"e-{n}", starts_in_days=n, minutes=n * DAY - 60) for n in (1, 2)),
        *(ev.association_event("attended", f"e-{n}", starts_in_days=n, minutes=n * DAY) for n in (1, 2)),
    ]
    view = source_view(fold_events(None, "P", came))
    assert view["member_engagement"] == 4 and view["latest_registered_event_at"] == f.at(2 * DAY)
    assert evaluate(ENGAGED, view, f.at(3 * DAY)) == {"engaged_members_unregistered"}
    assert evaluate(ENGAGED, view, f.at(2 * DAY + 367 * DAY)) == set()  # nothing attended for a year
    ahead = [*came, ev.association_event("registered", "gala", starts_in_days=40, minutes=3 * DAY)]
    assert evaluate(ENGAGED, source_view(fold_events(None, "P", ahead)), f.at(3 * DAY)) == set()
    walk_ins = [ev.membership("started")] + [
        ev.association_event("attended", f"w-{n}", starts_in_days=n, minutes=n * DAY) for n in range(4)
    ]
    view = source_view(fold_events(None, "P", walk_ins))
    assert view["latest_registered_event_at"] == f.at(3 * DAY)  # attending is being registered
    assert evaluate(ENGAGED, view, f.at(4 * DAY)) == {"engaged_members_unregistered"}
    undated = [ev.membership("started")] + [
        ev.association_event("attended", f"u-{n}", starts_in_days=None, minutes=n * DAY) for n in range(4)
    ]
    view = source_view(fold_events(None, "P", undated))
    assert view["latest_registered_event_at"] is None  # no start known: nothing to come
    assert evaluate(ENGAGED, view, f.at(4 * DAY)) == {"engaged_members_unregistered"}


def test_merge_combines_the_memberships_and_unites_the_events_as_one_profile_folding_both() -> None:
    ours = [ev.membership("started", minutes=0), ev.association_event("registered", "agm", minutes=5)]
    theirs = [
        ev.membership("started", minutes=100 * DAY),  # a second account, joined later
        ev.membership("renewed", "family", 365, minutes=200 * DAY),
        ev.association_event("attended", "agm", minutes=30 * DAY),
        ev.association_event("registered", "gala", starts_in_days=90, minutes=6),
    ]
    merged = merge_profiles(fold_events(None, "S", ours), fold_events(None, "A", theirs))
    one = fold_events(None, "S", [*ours, *theirs])
    assert merged.membership == one.membership and merged.member_events == one.member_events
    assert merged.membership is not None and (merged.membership.since, merged.membership.plan) == (f.at(0), "family")
    assert [e.event_id for e in merged.member_events] == ["agm", "gala"]


def test_export_carries_the_membership_and_events_and_erasure_removes_them(tmp_path: Path) -> None:
    events = [ev.membership("started"), ev.association_event("registered", "agm", minutes=1)]
    p = fold_events(None, "P", events)
    exported = p.model_dump(mode="json")  # what /v1/profiles/{id}/export returns as its profile
    assert exported["membership"] == {
        "status": "active", "status_at": "2025-03-14T09:00:00Z", "plan": "standard", "fee": "60.00",
        "currency": "EUR", "expires_at": "2026-03-14T09:00:00Z", "term_at": "2025-03-14T09:00:00Z",
        "since": "2025-03-14T09:00:00Z", "membership_id": "M-1",
    }  # fmt: skip
    assert exported["member_events"][0]["event_id"] == "agm"
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    store.save([p], [], "g", "i", {})
    assert store.load(["P"])["P"].membership == p.membership
    store.erase(["P"], f.at(5))
    assert store.load(["P"]) == {}
