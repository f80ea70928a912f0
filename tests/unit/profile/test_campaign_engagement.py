"""The engagement facet (Segment's e-mail and push lifecycle events) and the consent an unsubscribe or a
spam report withdraws: fold, out of order, merge, segment fields, export and erasure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from crmhub.core.conditions.fields import source_view
from crmhub.core.conditions.language import compile_segment, evaluate
from crmhub.core.sql import make_engine
from services.profile.facets.engagement import MAX_CAMPAIGNS
from services.profile.fold import fold_events
from services.profile.merge import merge_profiles
from services.profile.store import ProfileStore
from tests.unit import factories as f
from tests.unit.factories import at
from tests.unit.profile import events as ev


def test_lifecycle_events_are_counted_and_opens_clicks_and_taps_keep_their_latest_time() -> None:
    events = [
        ev.engagement("Email Delivered", minutes=0),
        ev.engagement("Email Opened", minutes=9),
        ev.engagement("Email Opened", minutes=3),  # late: an older open
        ev.engagement("Email Link Clicked", "summer", minutes=4),
        ev.engagement("Push Notification Received", minutes=5),
        ev.engagement("Push Notification Tapped", "app", minutes=6),
    ]
    p = fold_events(None, "P", events)
    assert p.engagement_counts == {
        "email_delivered": 1, "email_opened": 2, "email_clicked": 1, "push_received": 1, "push_tapped": 1,
    }  # fmt: skip
    assert (p.last_email_opened_at, p.last_email_clicked_at, p.last_push_tapped_at) == (at(9), at(4), at(6))
    assert p.last_engaged_at == at(9)
    assert p.engaged_campaigns == ["spring", "summer", "app"]  # in arrival order, each once at its latest
    view = source_view(p)
    assert view["engagement"]["email_opened"] == 2 and view["engagement"]["email_spam"] == 0
    assert view["last_email_opened_at"] == at(9) and view["email_bounced"] is False


def test_the_fold_does_not_depend_on_arrival_order_for_times_and_counts() -> None:
    events = [
        ev.engagement(t, minutes=m) for t, m in [("Email Opened", 1), ("Email Opened", 5), ("Email Link Clicked", 2)]
    ]
    forward, backward = fold_events(None, "P", events), fold_events(None, "P", events[::-1])
    fields = {"engagement_counts", "last_email_opened_at", "last_email_clicked_at", "last_engaged_at"}
    assert forward.model_dump(include=fields) == backward.model_dump(include=fields)


def test_campaigns_and_bounced_addresses_are_bounded() -> None:
    opens = [ev.engagement("Email Opened", f"c-{n}", minutes=n) for n in range(MAX_CAMPAIGNS + 3)]
    bounced = ev.engagement("Email Bounced", email="ann@example.com", minutes=50)
    p = fold_events(None, "P", [*opens, bounced, ev.engagement("Email Opened", "c-3", minutes=60)])
    assert len(p.engaged_campaigns) == MAX_CAMPAIGNS and p.engaged_campaigns[-1] == "c-3"
    assert p.bounced_emails == ["ann@example.com"] and source_view(p)["email_bounced"] is True
    assert p.last_engaged_at == at(60)  # a bounce is not engagement


def test_an_unsubscribe_or_a_spam_report_withdraws_email_marketing_consent_at_once() -> None:
    granted = ev.consent(True, minutes=0)
    for opt_out, method in [("Unsubscribed", "unsubscribed"), ("Email Marked as Spam", "marked as spam")]:
        p = fold_events(None, "P", [granted, ev.engagement(opt_out, minutes=5)])
        decision = p.consent["email"]["marketing"]
        assert (decision.granted, decision.at, decision.method) == (False, at(5), method)
        assert source_view(p)["consent"]["email"] is False
        assert p.engagement_counts == {"unsubscribed" if opt_out == "Unsubscribed" else "email_spam": 1}
    regranted = fold_events(None, "P", [ev.engagement("Unsubscribed", minutes=5), ev.consent(True, minutes=9)])
    assert regranted.consent["email"]["marketing"].granted  # a later opt-in wins, by event time
    late = fold_events(None, "P", [ev.consent(True, minutes=9), ev.engagement("Unsubscribed", minutes=5)])
    assert late.consent["email"]["marketing"].granted  # an older unsubscribe arriving late changes nothing
    tie = fold_events(None, "P", [ev.consent(True, minutes=5), ev.engagement("Email Marked as Spam", minutes=5)])
    assert not tie.consent["email"]["marketing"].granted  # a withdrawal wins a tie


def test_engaged_30d_follows_the_clock() -> None:
    view = source_view(fold_events(None, "P", [ev.engagement("Email Opened", minutes=0)]))
    engaged = compile_segment("engaged_30d", "days_since(last_engaged_at) < 30")
    assert evaluate([engaged], view, at(0) + timedelta(days=30) - timedelta(seconds=1)) == {"engaged_30d"}
    assert evaluate([engaged], view, at(0) + timedelta(days=30)) == set()


def test_merge_sums_counts_keeps_the_later_times_and_unites_campaigns_and_bounces() -> None:
    survivor = fold_events(None, "S", [ev.engagement("Email Opened", "a", minutes=1)])
    absorbed_events = [
        ev.engagement("Email Opened", "b", minutes=7),
        ev.engagement("Email Bounced", email="old@example.com", minutes=8),
    ]
    absorbed = fold_events(None, "A", absorbed_events)
    merged = merge_profiles(survivor, absorbed)
    assert merged.engagement_counts == {"email_opened": 2, "email_bounced": 1}
    assert (merged.last_email_opened_at, merged.last_engaged_at) == (at(7), at(7))
    assert merged.engaged_campaigns == ["b", "a"] and merged.bounced_emails == ["old@example.com"]


def test_export_carries_the_engagement_and_erasure_removes_it(tmp_path: Path) -> None:
    p = fold_events(None, "P", [ev.engagement("Email Bounced", email="ann@example.com")])
    exported = p.model_dump(mode="json")
    assert (exported["bounced_emails"], exported["engagement_counts"]) == (["ann@example.com"], {"email_bounced": 1})
    store = ProfileStore(make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    store.save([p], [], "g", "i", {})
    assert store.load(["P"])["P"].bounced_emails == ["ann@example.com"]
    store.erase(["P"], f.at(5))
    assert store.load(["P"]) == {}
