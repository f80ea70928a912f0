"""Identifiers seen, traits (survivorship) and demographics, consent, browsing, payments, complaints."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

import pytest

from schemas.profile import ConsentState, Demographics, Profile, Seen
from services.profile.facets.cart import MAX_RECENT_VIEWS
from services.profile.facets.complaints import MAX_ANSWERED
from services.profile.facets.payments import MAX_PAYMENT_FAILURES
from services.profile.facets.traits import age_band
from services.profile.fold import fold_events
from services.profile.policy import FoldRules
from tests.unit import factories as f
from tests.unit.factories import at
from tests.unit.profile import events as ev


def test_identifiers_remember_first_and_last_seen_by_event_time() -> None:
    events = [
        f.viewed("p", "1", minutes=5, anonymous_id="a-1"),
        f.viewed("p", "1", minutes=2, anonymous_id="a-1"),  # late
        f.viewed("p", "1", minutes=9, anonymous_id="a-2"),
    ]
    p = fold_events(None, "P", events)
    assert p.identifier_seen["anonymous_id"] == {"a-1": Seen(at(2), at(5)), "a-2": Seen(at(9), at(9))}
    assert p.identifier_seen["customer_id"] == {"c-1": Seen(at(2), at(9))}
    assert p.identifiers["anonymous_id"] == ["a-1", "a-2"]  # what lookups read is unchanged


def test_demographics_come_from_traits() -> None:
    traits = {"age": 29, "gender": " F ", "city": "Lyon", "address": {"state": "ARA", "country": "FR"}}
    p = fold_events(None, "P", [f.identify(traits)])
    assert p.demographics == Demographics(age_band="25-34", gender="female", city="Lyon", region="ARA", country="FR")
    assert p.traits["region"] == "ARA" and p.traits["country"] == "FR"
    p = fold_events(p, "P", [f.identify({"age": 70, "gender": "non-binary", "state": "IDF"}, minutes=1)])
    assert (p.demographics.age_band, p.demographics.gender, p.demographics.region) == ("65+", "non-binary", "IDF")


@pytest.mark.parametrize(
    ("age", "band"), [(0, "under 18"), (17, "under 18"), (18, "18-24"), (24, "18-24"), (25, "25-34"), (64, "55-64")]
)
def test_age_bands(age: int, band: str) -> None:
    assert age_band(age) == band
    assert age_band(None) is None


def test_survivorship_first_and_by_source() -> None:
    events = [
        f.identify({"name": "Ann", "city": "Paris"}, minutes=5),
        f.identify({"name": "Anne", "city": "Rome"}, minutes=1, source="pos"),  # older, from the till
        f.identify({"name": "Annie", "city": "Oslo"}, minutes=9),
    ]
    rules = FoldRules(survivorship=MappingProxyType({"name": ("first",), "city": ("pos", "web")}))
    p = fold_events(None, "P", events, rules)
    assert (p.traits["name"], p.traits["city"]) == ("Anne", "Rome")
    assert p.trait_sources["city"].source == "pos"
    assert fold_events(None, "P", events).traits["name"] == "Annie"  # default: latest wins


def test_consent_latest_decision_by_event_time_wins_per_channel_and_purpose() -> None:
    events = [
        ev.consent(True, minutes=1),
        ev.consent(False, minutes=5, method="unsubscribe_link"),
        ev.consent(True, minutes=3),  # older than the withdrawal, arriving late
        ev.consent(True, "sms", minutes=2),
        ev.consent(True, "email", "newsletter", minutes=2),
    ]
    p = fold_events(None, "P", events)
    assert p.consent["email"]["marketing"] == ConsentState(
        granted=False, at=at(5), source="web", method="unsubscribe_link"
    )
    assert p.consent["email"]["newsletter"].granted and p.consent["sms"]["marketing"].granted


def test_on_a_tie_a_withdrawal_wins() -> None:
    both = [ev.consent(False, minutes=1), ev.consent(True, minutes=1)]
    assert not fold_events(None, "P", both).consent["email"]["marketing"].granted
    assert not fold_events(None, "P", both[::-1]).consent["email"]["marketing"].granted


def test_recent_views_keep_the_newest_per_product_capped() -> None:
    events = [f.viewed(f"p-{i}", "1.00", minutes=i) for i in range(MAX_RECENT_VIEWS + 2)]
    events += [f.viewed("p-3", "1.00", minutes=50), f.viewed("p-4", "1.00", minutes=0.5)]  # again; late
    p = fold_events(None, "P", events)
    assert p.product_views == MAX_RECENT_VIEWS + 4
    ids = [v.product_id for v in p.recent_views]
    assert ids[0] == "p-3" and len(ids) == MAX_RECENT_VIEWS and len(set(ids)) == len(ids)
    assert [v.at for v in p.recent_views] == sorted((v.at for v in p.recent_views), reverse=True)
    assert p.recent_views[0].price == Decimal("1.00")


def test_payment_methods_from_captures_tills_and_invoices_pick_the_preferred_one() -> None:
    events = [
        ev.payment("payment.authorised", "pay-1", method="paypal"),  # captured later: not counted twice
        ev.payment("payment.captured", "pay-1", method="paypal"),
        ev.sale("s-1", "r-1", "20.00", tenders=[("card", "10.00"), ("card", "5.00"), ("cash", "5.00")]),
        ev.sale("s-1", "r-1", "20.00", tenders=[("card", "20.00")]),  # the same receipt again
        f.make("payment.invoice_paid", source="payment", properties={"invoice_id": "i", "amount": "1"}),
    ]
    p = fold_events(None, "P", events)
    assert p.payment_methods == {"paypal": 1, "card": 2, "cash": 1}
    assert p.preferred_payment_method == "card"


def test_the_last_payment_failure_is_the_latest_by_event_time() -> None:
    events = [f.payment_failed("expired", minutes=5), f.payment_failed("declined", minutes=1)]
    p = fold_events(None, "P", events)
    assert (p.payment_failures, p.last_payment_failure_reason, p.last_payment_failure_at) == (2, "expired", at(5))


def test_recent_payment_failures_keep_order_amount_reason_and_time_oldest_first() -> None:
    again = f.payment_failed("expired", "12.50", order_id="o-1", payment_id="pay-2", minutes=5)
    events = [
        again,
        f.payment_failed("declined", "12.50", order_id="o-1", payment_id="pay-1", minutes=1),
        again.model_copy(update={"event_id": "ev-redelivered"}),  # the same failure under another event id
        *(f.payment_failed("declined", minutes=10 + n) for n in range(MAX_PAYMENT_FAILURES)),
    ]
    p = fold_events(None, "P", events[:3])
    assert [(x.payment_id, x.order_id, x.amount, x.currency, x.reason, x.at) for x in p.recent_payment_failures] == [
        ("pay-1", "o-1", Decimal("12.50"), "USD", "declined", at(1)),
        ("pay-2", "o-1", Decimal("12.50"), "USD", "expired", at(5)),
    ]
    capped = fold_events(None, "P", events)
    assert len(capped.recent_payment_failures) == MAX_PAYMENT_FAILURES
    assert capped.recent_payment_failures[0].at == at(10)  # the oldest went first
    assert (
        Profile.model_validate({"profile_id": "P", "created_at": at(0), "updated_at": at(0)}).recent_payment_failures
        == []
    )


def test_the_complaint_sentiment_threshold_is_configurable() -> None:
    events = [f.mention("m-1", sentiment=-0.6), f.mention("m-2", sentiment=-0.95), f.mention("m-3", complaint=True)]
    default = fold_events(None, "P", events)
    stricter = fold_events(None, "P", events, FoldRules(complaint_sentiment=-0.9))
    assert [c.message_id for c in default.open_complaints] == ["m-1", "m-2", "m-3"]
    assert [c.message_id for c in stricter.open_complaints] == ["m-2", "m-3"]  # flagged ones always count


def test_first_response_times_of_answered_complaints() -> None:
    events = [
        f.mention("m-1", complaint=True, minutes=0),
        f.mention("m-2", complaint=True, minutes=10),
        f.reply("m-1", minutes=30),
        f.reply("m-1", minutes=40),  # not a first response
        ev.closed("m-2", minutes=20),  # closing the case answers it too
    ]
    p = fold_events(None, "P", events)
    assert (p.complaints_total, p.complaints_answered, p.complaints_open) == (2, 2, 0)
    assert (p.last_first_response_s, p.avg_first_response_s) == (600.0, 1200.0)


def test_a_reply_overtaking_its_complaint_answers_it_on_arrival() -> None:
    p = fold_events(None, "P", [f.reply("m-1", minutes=5), f.mention("m-1", complaint=True, minutes=2)])
    assert (p.complaints_total, p.complaints_answered, p.open_complaints) == (1, 1, [])
    assert p.last_first_response_s == 180.0


def test_a_redelivered_complaint_does_not_reopen_once_answered() -> None:
    complaint = f.mention("m-1", complaint=True)
    p = fold_events(None, "P", [complaint, f.reply("m-1", minutes=1), complaint])
    assert (p.complaints_total, p.complaints_open, p.complaints_answered) == (1, 0, 1)


def test_answered_complaints_are_capped() -> None:
    events = [f.reply(f"m-{i}", minutes=i) for i in range(MAX_ANSWERED + 5)]
    p = fold_events(None, "P", events)
    assert len(p.answered_complaints) == MAX_ANSWERED and "m-0" not in p.answered_complaints
