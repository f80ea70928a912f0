"""Profile merges: what the survivor takes over, the absorbed profile's stub, redirects of later events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.events import Event
from schemas.profile import Cart, CartItem, OpenComplaint, Profile
from services.profile.facets.identity import MAX_IDS_PER_KIND
from services.profile.fold import fold_events
from services.profile.merge import fold_batch, merge_profiles, survivor_of
from services.profile.rfm import refresh_rfm
from tests.unit import factories as f
from tests.unit.factories import at
from tests.unit.profile import events as ev


def profile(profile_id: str, **fields: Any) -> Profile:
    return Profile(profile_id=profile_id, created_at=fields.pop("created_at", at(0)), updated_at=at(0), **fields)


def complaint(message_id: str, minutes: float = 0) -> OpenComplaint:
    return OpenComplaint(message_id=message_id, platform="twitter", handle="@ann", text="late", at=at(minutes))


def cart(product_id: str, minutes: float) -> Cart:
    item = CartItem(product_id=product_id, price=Decimal("5.00"), quantity=1)
    return Cart(items=[item], value=Decimal("5.00"), updated_at=at(minutes))


def merged_event(survivor: str, absorbed: str, minutes: float = 0) -> Event:
    return f.make(
        "profile.merged",
        source="crm",
        minutes=minutes,
        customer_id=None,
        loyalty_id="L-1",
        profile_id=survivor,
        properties={"survivor_id": survivor, "absorbed_id": absorbed, "linked_by": "loyalty_id"},
    )


def test_every_profile_field_has_a_merge_rule() -> None:
    # a new field needs a rule in merge_profiles (and then a place in this list)
    assert set(Profile.model_fields) == {
        *("profile_id", "version", "created_at", "updated_at", "identifiers", "identifier_seen", "traits"),
        *("trait_sources", "demographics", "consent", "order_count", "web_orders", "pos_orders"),
        *("cancelled_orders", "total_spent", "refunded_total", "net_revenue", "average_order_value"),
        *("lifetime_value", "currency", "totals_by_currency", "first_order_at", "last_order_at", "order_ids"),
        "order_months",
        *("recent_orders", "refund_ids", "refund_count", "return_count", "category_spend", "top_categories"),
        *("product_spend", "top_products", "product_views", "recent_views", "cart", "complaints_total"),
        *("open_complaints", "complaints_answered", "answered_complaints", "last_first_response_s"),
        *("avg_first_response_s", "first_response_total_s", "payment_failures", "last_payment_failure_reason"),
        *("last_payment_failure_at", "chargebacks", "payment_methods", "preferred_payment_method", "loyalty"),
        *("rfm", "merged_into", "recent_payment_failures", "traits_refused", "context", "groups"),
        "owned_items",
        *("open_invoices", "paid_invoice_ids", "invoices_issued", "invoices_paid", "engagement_counts"),
        *("last_email_opened_at", "last_email_clicked_at", "last_push_tapped_at", "last_engaged_at"),
        *("engaged_campaigns", "bounced_emails"),
        *("membership", "member_events"),
        *("open_cases", "closed_cases", "case_notes", "cases_opened", "cases_responded", "cases_closed"),
        *("case_response_total_s", "case_handling_total_s", "avg_case_response_s", "avg_case_handling_s"),
        *("recent_surveys", "recent_reviews", "feedback_ids", "surveys_answered", "nps_latest", "nps_latest_at"),
        *("csat_latest", "csat_latest_at", "csat_count", "csat_total", "csat_avg", "reviews_count"),
        *("review_rating_total", "review_avg"),
    }


def test_recent_payment_failures_unite_keeping_the_latest() -> None:
    ours = fold_events(None, "S", [f.payment_failed("declined", order_id="o-1", payment_id="pay-a", minutes=1)])
    theirs = fold_events(
        None,
        "A",
        [
            f.payment_failed("declined", order_id="o-1", payment_id="pay-a", minutes=1),  # the same failure
            f.payment_failed("expired", order_id="o-2", payment_id="pay-b", minutes=0),
        ],
    )
    merged = merge_profiles(ours, theirs)
    assert [(x.payment_id, x.at) for x in merged.recent_payment_failures] == [("pay-b", at(0)), ("pay-a", at(1))]


def test_counters_and_amounts_add_up_and_orders_unite() -> None:
    survivor = fold_events(
        None,
        "S",
        [
            ev.order("o-1", "20.00", "EUR", minutes=10),
            ev.order("o-2", "10.10", "EUR", minutes=20),
            ev.refund("o-2", "0.10", "EUR", minutes=21),
            f.payment_failed("card_declined", minutes=1),
            f.mention("m-1", complaint=True),
        ],
    )
    absorbed = fold_events(
        None,
        "A",
        [
            ev.sale("s-1", "r-1", "9.95", "EUR", tenders=[("cash", "9.95")], minutes=5),
            ev.order("o-9", "700", "JPY", minutes=6),
            f.payment_failed("insufficient_funds", minutes=2),
            f.payment_failed("expired", minutes=0),
            f.mention("m-2", complaint=True),
            f.mention("m-3", complaint=True),
        ],
    ).model_copy(update={"created_at": at(-5)})
    merged = merge_profiles(survivor, absorbed)
    assert merged.profile_id == "S" and merged.merged_into is None
    assert (merged.version, merged.created_at) == (11, at(-5))
    assert (merged.order_count, merged.web_orders, merged.pos_orders) == (4, 3, 1)
    assert (merged.total_spent, merged.refunded_total, merged.net_revenue) == (
        Decimal("40.05"),
        Decimal("0.10"),
        Decimal("39.95"),
    )
    assert merged.average_order_value == Decimal("13.35") and merged.lifetime_value == Decimal("39.95")
    assert merged.totals_by_currency["JPY"].spent == Decimal(700)
    assert merged.order_ids == ["o-1", "o-2", "pos:s-1:r-1", "o-9"]
    assert set(merged.recent_orders) == {"o-1", "o-2", "pos:s-1:r-1", "o-9"}
    assert (merged.first_order_at, merged.last_order_at) == (at(5), at(20))
    assert merged.currency == "EUR"
    assert (merged.payment_failures, merged.last_payment_failure_reason) == (3, "insufficient_funds")
    assert merged.payment_methods == {"cash": 1} and merged.preferred_payment_method == "cash"
    assert merged.complaints_total == 3
    assert merged.loyalty.earned == 20 + 10 + 9 + 700 and merged.loyalty.tier == "silver"


def test_an_order_both_profiles_counted_counts_once_when_both_remember_it() -> None:
    survivor = fold_events(None, "S", [ev.order("o-1", "10.00"), ev.order("o-2", "5.00")])
    absorbed = fold_events(None, "A", [ev.order("o-1", "10.00"), ev.refund("o-1", "4.00", minutes=1)])
    merged = merge_profiles(survivor, absorbed)
    assert (merged.order_count, merged.web_orders, merged.order_ids) == (2, 2, ["o-1", "o-2"])
    assert (merged.total_spent, merged.refunded_total) == (Decimal("15.00"), Decimal(0))
    assert merged.loyalty.earned == 15 and merged.refund_count == 1


def test_a_follow_up_waiting_in_one_profile_meets_its_order_in_the_other() -> None:
    survivor = fold_events(None, "S", [ev.refund("o-1", "4.00")])
    absorbed = fold_events(None, "A", [ev.order("o-1", "10.00")])
    merged = merge_profiles(survivor, absorbed)
    assert merged.recent_orders["o-1"].amount == Decimal("10.00") and merged.order_count == 1
    assert (merged.net_revenue, merged.loyalty.earned) == (Decimal("6.00"), 6)
    other_way = merge_profiles(absorbed, survivor)
    assert (other_way.net_revenue, other_way.refund_count, other_way.loyalty.earned) == (Decimal("6.00"), 1, 6)


def test_identifier_times_consent_views_and_answers_merge() -> None:
    survivor = fold_events(
        None,
        "S",
        [
            f.viewed("p-1", "1", minutes=1, email="a@x.io"),
            ev.consent(True, minutes=3),
            f.mention("m-1", complaint=True, minutes=0),
            f.reply("m-2", minutes=7),
        ],
    )
    absorbed = fold_events(
        None,
        "A",
        [
            f.viewed("p-1", "1", minutes=6, email="a@x.io"),
            f.viewed("p-2", "1", minutes=4),
            ev.consent(False, minutes=5),
            f.reply("m-1", minutes=10),
            f.mention("m-2", complaint=True, minutes=2),
        ],
    )
    merged = merge_profiles(survivor, absorbed)
    assert merged.identifier_seen["email"]["a@x.io"] == (at(1), at(6))
    assert merged.identifier_seen["customer_id"]["c-1"] == (at(0), at(10))
    assert not merged.consent["email"]["marketing"].granted
    assert [(v.product_id, v.at) for v in merged.recent_views] == [("p-1", at(6)), ("p-2", at(4))]
    assert merged.product_views == 3
    # m-1: open in S, answered (reply only) in A; m-2: answered in S before it arrived, complained in A
    assert merged.open_complaints == [] and merged.complaints_total == 2
    assert merged.complaints_answered == 2 and merged.avg_first_response_s == 450.0
    assert merged.answered_complaints["m-1"].complained_at == at(0)


def test_spend_by_category_adds_up_and_derived_fields_are_computed_again() -> None:
    lines = ev.products(("p-1", "shoes", "30.00", 1))
    survivor = fold_events(None, "S", [ev.order("o-1", "30.00", lines=lines)])
    absorbed = fold_events(None, "A", [ev.order("o-2", "50.00", lines=ev.products(("p-2", "hats", "25.00", 2)))])
    merged = merge_profiles(survivor, absorbed)
    assert merged.category_spend == {"shoes": Decimal("30.00"), "hats": Decimal("50.00")}
    assert merged.top_categories == ["hats", "shoes"] and merged.top_products == ["p-2", "p-1"]
    rfm = refresh_rfm([survivor], at(99))[0].rfm
    assert merge_profiles(refresh_rfm([survivor], at(99))[0], absorbed).rfm == rfm  # until the next refresh


def test_merging_legacy_profiles_upgrades_them_first() -> None:
    legacy = profile("A", order_count=1, total_spent=Decimal("9.95"), currency="EUR", order_ids=["x"])
    merged = merge_profiles(profile("S"), legacy)
    assert (merged.total_spent, merged.net_revenue, merged.currency) == (Decimal("9.95"), Decimal("9.95"), "EUR")


def test_order_times_of_a_profile_without_orders_are_ignored() -> None:
    merged = merge_profiles(profile("S"), profile("A", first_order_at=at(5), last_order_at=at(6)))
    assert (merged.first_order_at, merged.last_order_at) == (at(5), at(6))
    assert merge_profiles(profile("S"), profile("A")).first_order_at is None


def test_identifiers_unite_up_to_the_cap_and_the_survivors_traits_win() -> None:
    many = [f"a-{i}" for i in range(MAX_IDS_PER_KIND)]
    survivor = profile(
        "S", identifiers={"email": ["s@x.io"], "anonymous_id": many[:-1]}, traits={"city": "Berlin", "age": 30}
    )
    absorbed = profile(
        "A",
        identifiers={"email": ["a@x.io", "s@x.io"], "loyalty_id": ["L-1"], "anonymous_id": ["z-1", "z-2"]},
        traits={"city": "Paris", "name": "Ann"},
    )
    merged = merge_profiles(survivor, absorbed)
    assert merged.identifiers == {
        "email": ["s@x.io", "a@x.io"],
        "anonymous_id": [*many[:-1], "z-1"],
        "loyalty_id": ["L-1"],
    }
    assert merged.traits == {"city": "Berlin", "age": 30, "name": "Ann"}
    assert survivor.identifiers["email"] == ["s@x.io"]  # the inputs are not touched


def test_the_newer_value_of_a_trait_wins_whichever_profile_held_it() -> None:
    survivor = fold_events(None, "S", [f.identify({"city": "Berlin", "age": 30}, minutes=5)])
    absorbed = fold_events(None, "A", [f.identify({"city": "Paris", "name": "Ann"}, minutes=9)])
    merged = merge_profiles(survivor, absorbed)
    assert merged.traits == {"city": "Paris", "age": 30, "name": "Ann"}
    assert merged.trait_sources["city"].at == at(9) and merged.trait_sources["age"].at == at(5)


def test_the_newer_cart_stays() -> None:
    older, newer = cart("p-old", minutes=1), cart("p-new", minutes=2)
    assert merge_profiles(profile("S", cart=older), profile("A", cart=newer)).cart == newer
    assert merge_profiles(profile("S", cart=newer), profile("A", cart=older)).cart == newer
    emptied_later = Cart(cleared_at=at(3))  # an order emptied the survivor's cart after the other's change
    assert merge_profiles(profile("S", cart=emptied_later), profile("A", cart=newer)).cart == emptied_later
    assert merge_profiles(profile("S", cart=newer), profile("A")).cart == newer


def test_open_complaints_unite_by_message() -> None:
    survivor = profile("S", open_complaints=[complaint("m-1")])
    absorbed = profile("A", open_complaints=[complaint("m-1"), complaint("m-2")])
    assert [c.message_id for c in merge_profiles(survivor, absorbed).open_complaints] == ["m-1", "m-2"]


def test_survivor_of_follows_merges_in_steps() -> None:
    profiles = {"A": profile("A", merged_into="B"), "B": profile("B", merged_into="C"), "C": profile("C")}
    assert survivor_of(profiles, "A") == "C"
    assert survivor_of(profiles, "C") == "C"
    assert survivor_of(profiles, "unknown") == "unknown"


def test_a_merge_folds_the_absorbed_profile_in_and_leaves_a_stub() -> None:
    s = fold_events(None, "S", [f.order("o-1", "10.00", minutes=1)])
    a = fold_events(None, "A", [f.pos_sale("s-1", "r-1", "5.00", minutes=2, customer_id="c-2")])
    changed = fold_batch({"S": s, "A": a}, [("S", merged_event("S", "A", minutes=3))])
    assert set(changed) == {"S", "A"}
    survivor, stub = changed["S"], changed["A"]
    assert (survivor.order_count, survivor.total_spent) == (2, Decimal("15.00"))
    assert survivor.identifiers == {"customer_id": ["c-1", "c-2"], "loyalty_id": ["L-1"]}
    assert survivor.version == 3  # two events folded before, and the merge
    assert stub == Profile(profile_id="A", version=2, created_at=at(2), updated_at=at(3), merged_into="S")


def test_events_for_the_absorbed_profile_go_to_the_survivor() -> None:
    s, a = fold_events(None, "S", [f.order("o-1", "10.00")]), fold_events(None, "A", [f.order("o-2", "1.00")])
    routed = [
        ("A", f.order("o-3", "2.00", minutes=1)),  # before the merge: still A's
        ("S", merged_event("S", "A", minutes=2)),
        ("A", f.order("o-4", "4.00", minutes=3)),  # stamped before the merge, arriving after it
    ]
    changed = fold_batch({"S": s, "A": a}, routed)
    assert changed["S"].order_ids == ["o-1", "o-2", "o-3", "o-4"]
    assert changed["S"].total_spent == Decimal("17.00")
    assert changed["A"].merged_into == "S" and changed["A"].order_ids == []


def test_a_merge_before_any_event_of_the_absorbed_profile_redirects_its_events() -> None:
    s = fold_events(None, "S", [f.order("o-1", "10.00")])
    changed = fold_batch({"S": s}, [("S", merged_event("S", "A", minutes=1))])
    assert changed["A"] == Profile(profile_id="A", version=1, created_at=at(1), updated_at=at(1), merged_into="S")
    later = fold_batch({"S": changed["S"], "A": changed["A"]}, [("A", f.order("o-2", "2.00", minutes=2))])
    assert set(later) == {"S"} and later["S"].order_ids == ["o-1", "o-2"]


def test_a_redelivered_merge_changes_nothing_but_the_version() -> None:
    s = fold_events(None, "S", [f.order("o-1", "10.00")])
    first = fold_batch({"S": s, "A": fold_events(None, "A", [f.order("o-2", "1.00")])}, [("S", merged_event("S", "A"))])
    again = fold_batch(first, [("S", merged_event("S", "A"))])
    assert set(again) == {"S"}
    assert again["S"].model_copy(update={"version": first["S"].version}) == first["S"]
    assert again["S"].version == first["S"].version + 1


def test_chained_merges_reach_the_last_survivor() -> None:
    profiles = {pid: fold_events(None, pid, [f.order(f"o-{pid}", "1.00")]) for pid in ("A", "B", "C")}
    routed = [("B", merged_event("B", "A")), ("C", merged_event("C", "B")), ("A", f.order("o-late", "1.00"))]
    changed = fold_batch(profiles, routed)
    assert (changed["A"].merged_into, changed["B"].merged_into) == ("B", "C")
    assert changed["C"].order_ids == ["o-C", "o-B", "o-A", "o-late"]
    # a merge naming a profile merged meanwhile merges what that profile became
    again = fold_batch(changed, [("A", merged_event("A", "C"))])
    assert set(again) == {"C"}
