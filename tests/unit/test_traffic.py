"""The synthetic retail traffic generator: determinism, message shapes, journeys, mix and bad outputs."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from crmhub.demo import catalogue
from crmhub.demo.traffic import Generated, RetailSimulator, TrafficMix
from schemas.events import COMPLAINT_SENTIMENT, EVENT_TYPES, ProductUpserted, validate_event
from services.ingest.decode import RawInput, Rejection, decode_raw

START = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
SEGMENT_KEYS = {
    "type",
    "event",
    "messageId",
    "anonymousId",
    "userId",
    "timestamp",
    "properties",
    "traits",
    "context",
    "groupId",
}
NATIVE_SOURCES = {"pos", "payment", "social", "support", "catalog", "web"}
E164 = re.compile(r"^\+(49|1)\d{10,11}$")
SOCIAL_KINDS = {"social.mention", "social.comment", "social.direct_message"}
# Segment calls the demo does not make; ingest's own
NOT_GENERATED = {"page", "screen", "alias", "profile.merged"}
# the rare kinds (refunds, chargebacks, returns, invoices, closed cases, consent changes) made common
AFTER_SALES = TrafficMix(
    order_cancellation=2.0,
    order_refund=3.0,
    payment_refund=3.5,
    chargeback=1.0,
    pos_return=4.0,
    invoice=1.5,
    invoice_payment=2.0,
    case_closure=2.0,
    consent_opt_in=1.0,
    consent_withdrawal=2.0,
)


def run(sim: RetailSimulator, batches: int, size: int = 500) -> list[tuple[datetime, Generated]]:
    out: list[tuple[datetime, Generated]] = []
    for i in range(batches):
        now = START + timedelta(seconds=i)
        out.extend((now, g) for g in sim.next_batch(now, size))
    return out


@pytest.fixture(scope="module")
def traffic() -> list[tuple[datetime, Generated]]:
    return run(RetailSimulator(seed=11), batches=40)  # 20,000 outputs, bad_fraction=0


@pytest.fixture(scope="module")
def after_sales() -> list[tuple[datetime, Generated]]:
    return run(RetailSimulator(seed=19, customers=400, mix=AFTER_SALES), batches=40)


@pytest.fixture(scope="module", params=["defaults", "after_sales"])
def journeys(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The good outputs, in order, of the default traffic and of traffic heavy in the rare kinds."""
    return payloads(request.getfixturevalue("traffic" if request.param == "defaults" else "after_sales"))


def payloads(traffic: list[tuple[datetime, Generated]]) -> list[dict[str, Any]]:
    return [g.payload for _, g in traffic if isinstance(g.payload, dict)]


def name(payload: dict[str, Any]) -> str:
    return str(payload.get("event") or payload["type"])


def at(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(payload.get("timestamp") or payload["occurred_at"])


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def is_complaint(payload: dict[str, Any]) -> bool:
    """A social message that complains: flagged so, or negative enough (as ``SocialMessage.is_complaint``)."""
    if name(payload) not in SOCIAL_KINDS:
        return False
    props = payload["properties"]
    return bool(props["complaint"] or props["sentiment"] <= COMPLAINT_SENTIMENT)


def customer_ids(payload: dict[str, Any]) -> dict[str, str]:
    return {k: payload[k] for k in ("customer_id", "loyalty_id", "email", "phone") if payload.get(k)}


def segment_problems(msg: dict[str, Any]) -> list[str]:
    """What makes ``msg`` not a Segment tracking API track/identify/group message (empty if it is one)."""
    problems = [f"unexpected key {k}" for k in set(msg) - SEGMENT_KEYS]
    if msg.get("type") not in ("track", "identify", "group") or ("groupId" in msg) != (msg["type"] == "group"):
        problems.append("type")
    try:
        uuid.UUID(msg["messageId"])
        if datetime.fromisoformat(msg["timestamp"]).tzinfo is None:
            problems.append("naive timestamp")
    except (KeyError, TypeError, ValueError):
        problems.append("messageId/timestamp")
    if not (msg.get("anonymousId") or msg.get("userId")):
        problems.append("no anonymousId/userId")
    if msg.get("context", {}).get("library", {}).get("name") != "crmhub-demo":
        problems.append("context.library")
    if msg.get("type") == "track" and not (isinstance(msg.get("event"), str) and msg["event"]):
        problems.append("event")
    body = "properties" if msg.get("type") == "track" else "traits"
    if not isinstance(msg.get(body), dict):
        problems.append(body)
    return problems


def as_envelope(msg: dict[str, Any]) -> dict[str, Any]:
    """Roughly what ingest makes of a Segment message: enough to validate its body against the schema."""
    env = {
        "event_id": msg["messageId"],
        "source": "web",
        "type": name(msg),
        "occurred_at": msg["timestamp"],
        "anonymous_id": msg.get("anonymousId"),
        "customer_id": msg.get("userId"),
    }
    if msg["type"] == "group":
        return env | {"group_id": msg["groupId"], "traits": msg["traits"]}
    if msg["type"] == "identify":
        return env | {
            "traits": msg["traits"],
            "email": msg["traits"]["email"],
            "phone": msg["traits"]["phone"],
        }
    return env | {"properties": msg["properties"]}


def line_sum(products: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(str(p["price"])) * p["quantity"] for p in products), Decimal(0))


# -- determinism and framing ------------------------------------------------------------------------------


def test_same_seed_same_traffic_and_different_seed_different_traffic() -> None:
    def dump(seed: int) -> list[tuple[str, str, str]]:
        return [(g.source, g.key, json.dumps(g.payload)) for _, g in run(RetailSimulator(seed=seed), 4, 250)]

    assert dump(3) == dump(3)
    assert dump(3) != dump(4)


def test_outputs_are_json_serialisable_and_never_in_the_future(
    traffic: list[tuple[datetime, Generated]],
) -> None:
    assert len(traffic) == 20_000
    last = datetime.min.replace(tzinfo=UTC)
    for now, g in traffic:
        assert isinstance(g.payload, dict)
        json.dumps(g.payload)
        assert g.key
        stamp = datetime.fromisoformat(g.payload.get("timestamp") or g.payload["occurred_at"])
        assert last <= stamp <= now
        assert now - stamp < timedelta(seconds=1)
        last = stamp


def test_timestamps_keep_the_timezone_of_now() -> None:
    cest = timezone(timedelta(hours=2))
    batch = RetailSimulator(seed=1).next_batch(datetime(2025, 6, 1, 12, tzinfo=cest), 20)
    for g in batch:
        assert isinstance(g.payload, dict)
        assert (g.payload.get("timestamp") or g.payload["occurred_at"]).endswith("+02:00")


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError):
        RetailSimulator().next_batch(datetime(2025, 1, 1), 1)  # noqa: DTZ001


# -- shapes -----------------------------------------------------------------------------------------------


def test_web_outputs_are_segment_messages_matching_the_schema(
    traffic: list[tuple[datetime, Generated]],
) -> None:
    web = [g for _, g in traffic if g.source == "web" and not is_native(g)]
    assert len(web) > 10_000
    for g in web:
        assert isinstance(g.payload, dict)
        assert segment_problems(g.payload) == [], g.payload
        assert g.key == g.payload["anonymousId"]
        validate_event(as_envelope(g.payload))
    events = Counter(name(g.payload) for g in web if isinstance(g.payload, dict))
    expected = {"identify", "Product Viewed", "Product Added", "Product Removed", "Cart Viewed", "Checkout Started"}
    expected |= {"Payment Info Entered", "Order Completed", "Order Cancelled", "Order Refunded"}
    expected |= {"Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced", "Email Marked as Spam"}
    expected |= {"Unsubscribed", "Push Notification Received", "Push Notification Tapped", "group"}
    expected |= {"Unsubscribed", "Push Notification Received", "Push Notification Tapped", "Product Reviewed"}
    assert expected | {"consent.granted", "consent.withdrawn"} == set(events)


def test_native_outputs_validate_against_the_event_contract(
    traffic: list[tuple[datetime, Generated]],
) -> None:
    native = [g for _, g in traffic if g.source != "web" or is_native(g)]
    assert {g.source for g in native} == NATIVE_SOURCES
    for g in native:
        assert isinstance(g.payload, dict)
        event = validate_event(g.payload)
        assert event.source == g.source
        if isinstance(event, ProductUpserted):  # about no customer: keyed by the product
            assert g.key == event.properties.product_id
        else:
            assert g.key in event.identifiers().values()


def is_native(g: Generated) -> bool:
    """The shop's back office sends native events (order fulfilment) on the web source too."""
    return isinstance(g.payload, dict) and "event_id" in g.payload


def test_every_output_decodes_through_ingest_and_every_kind_is_generated(
    traffic: list[tuple[datetime, Generated]], after_sales: list[tuple[datetime, Generated]]
) -> None:
    decoded = Counter[str]()
    for now, g in traffic + after_sales:
        value = g.payload if isinstance(g.payload, bytes) else orjson.dumps(g.payload)
        event = decode_raw(RawInput(g.source, value, now))
        assert not isinstance(event, Rejection), (event, g.payload)
        assert event.source == g.source
        decoded[event.type] += 1
    assert set(decoded) == set(EVENT_TYPES) - NOT_GENERATED
    default_kinds = {name(p) for p in payloads(traffic)}
    assert default_kinds == set(EVENT_TYPES) - NOT_GENERATED  # the defaults make every kind too


def test_identify_traits_are_realistic(traffic: list[tuple[datetime, Generated]]) -> None:
    identifies = [p for p in payloads(traffic) if p.get("type") == "identify"]
    assert identifies
    for p in identifies:
        t = p["traits"]
        assert p["userId"] and p["anonymousId"]
        assert t["email"] == t["email"].lower() and "@" in t["email"]
        assert E164.match(t["phone"]), t["phone"]
        assert t["name"] == f"{t['first_name']} {t['last_name']}"
        assert 18 <= t["age"] <= 90 and 0 <= t["children"] <= 4
        assert t["country"] in ("DE", "US") and t["city"] in catalogue.CITIES[t["country"]]


def test_catalogue_and_stores() -> None:
    assert 55 <= len(catalogue.PRODUCTS) <= 65
    assert set(catalogue.CATEGORIES) == {
        "electronics",
        "apparel",
        "home",
        "beauty",
        "toys",
        "grocery",
        "sports",
    }
    assert len({p.product_id for p in catalogue.PRODUCTS}) == len({p.sku for p in catalogue.PRODUCTS}) == 60
    assert all(p.price > 0 and p.price.as_tuple().exponent == -2 for p in catalogue.PRODUCTS)
    assert len(catalogue.STORES) == 6 and len({s.city for s in catalogue.STORES}) == 6
    assert all(2 <= len(s.tills) <= 4 for s in catalogue.STORES)


# -- money and journeys -----------------------------------------------------------------------------------


def test_order_totals_are_the_sum_of_their_lines(journeys: list[dict[str, Any]]) -> None:
    seen = Counter[str]()
    for p in journeys:
        kind = name(p)
        props = p.get("properties", {})
        if kind == "Order Completed":
            assert money(props["total"]) == money(props["revenue"]) == line_sum(props["products"])
            assert props["currency"] in ("EUR", "USD")
        elif kind == "Checkout Started":
            assert money(props["value"]) == line_sum(props["products"])
        elif kind in ("Order Cancelled", "Order Refunded"):
            assert money(props["total"]) == line_sum(props["products"]) > 0
        elif kind == "pos.sale":
            assert Decimal(props["total"]) == line_sum(props["line_items"])
            assert sum(Decimal(t["amount"]) for t in props["tenders"]) == Decimal(props["total"])
        elif kind == "pos.return":
            assert Decimal(props["total"]) == line_sum(props["line_items"]) > 0
        else:
            continue
        seen[kind] += 1
    assert len(seen) == 6 and min(seen[k] for k in ("Order Completed", "Checkout Started", "pos.sale")) > 100


def test_journeys_come_in_a_plausible_order(traffic: list[tuple[datetime, Generated]]) -> None:
    identified: set[tuple[str, str]] = set()
    carts: dict[str, str] = {}  # cart_id -> userId
    checkouts: set[str] = set()
    currency: dict[str, str] = {}
    complaints: dict[str, tuple[str, datetime]] = {}
    replies = 0
    for p in payloads(traffic):
        kind, props = name(p), p.get("properties", {})
        if p.get("type") == "identify":
            identified.add((p["anonymousId"], p["userId"]))
        elif "userId" in p:
            assert (p["anonymousId"], p["userId"]) in identified, "userId before identify"
        if "currency" in props and p.get("userId"):
            assert currency.setdefault(p["userId"], props["currency"]) == props["currency"]
        if kind == "Product Added":
            assert carts.setdefault(props["cart_id"], p["userId"]) == p["userId"]
        elif kind in ("Product Removed", "Cart Viewed", "Checkout Started", "Payment Info Entered", "Order Completed"):
            assert carts.get(props["cart_id"]) == p["userId"], f"{kind} before Product Added"
        if kind == "Checkout Started":
            checkouts.add(props["order_id"])
        elif kind in ("Payment Info Entered", "Order Completed"):
            assert props["order_id"] in checkouts
        elif kind in SOCIAL_KINDS and is_complaint(p):
            complaints[props["message_id"]] = (p["email"], at(p))
        elif kind == "support.complaint_responded":
            email, when = complaints.pop(props["message_id"])  # an earlier complaint, answered once
            assert p["email"] == email and at(p) > when
            replies += 1
    assert replies > 100


def test_web_orders_are_authorised_first_then_captured_or_cancelled(journeys: list[dict[str, Any]]) -> None:
    authorised: dict[str, tuple[str, Decimal, str]] = {}  # order_id -> (customer_id, amount, payment_id)
    orders: dict[str, tuple[str, Decimal]] = {}  # order_id -> (customer, total) of Order Completed
    captured: set[str] = set()
    cancelled: set[str] = set()
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        order_id = props.get("order_id")
        if kind == "payment.authorised":
            assert order_id not in authorised, "authorised twice"
            authorised[order_id] = (p["customer_id"], Decimal(props["amount"]), props["payment_id"])
        elif kind == "Order Completed":
            customer, amount, _ = authorised[order_id]  # authorised before it completes
            assert (customer, amount) == (p["userId"], money(props["total"]))
            orders[order_id] = (customer, amount)
        elif kind == "payment.captured":
            assert order_id in orders and order_id not in captured | cancelled
            assert authorised[order_id] == (p["customer_id"], Decimal(props["amount"]), props["payment_id"])
            captured.add(order_id)
        elif kind == "Order Cancelled":
            assert order_id in orders and order_id not in captured | cancelled, "cancelled after capture"
            customer, total = orders[order_id]
            assert p["userId"] == customer and money(props["total"]) <= total
            cancelled.add(order_id)
    assert len(captured) > 100 and cancelled
    assert len(captured) + len(cancelled) > 0.9 * len(orders)  # the rest are waiting for their capture


def test_refunds_and_chargebacks_refer_to_captured_orders_and_never_exceed_them(
    journeys: list[dict[str, Any]],
) -> None:
    orders: dict[str, tuple[str, Decimal, Counter[str]]] = {}  # order_id -> (customer, total, units)
    payments: dict[str, str] = {}  # order_id -> payment_id, once captured
    refunded: dict[str, Counter[str]] = defaultdict(Counter)  # order_id -> units refunded
    refunded_amount: dict[str, Decimal] = defaultdict(Decimal)
    to_pay_back: dict[str, list[Decimal]] = defaultdict(list)  # Order Refunded not yet payment.refunded
    charged_back: set[str] = set()
    paid_back = 0
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        order_id = props.get("order_id")
        if kind == "Order Completed":
            units = Counter({i["product_id"]: i["quantity"] for i in props["products"]})
            orders[order_id] = (p["userId"], money(props["total"]), units)
        elif kind == "payment.captured":
            payments[order_id] = props["payment_id"]
        elif kind == "Order Refunded":
            assert order_id in payments and order_id not in charged_back, "refund of an uncaptured order"
            customer, total, units = orders[order_id]
            assert p["userId"] == customer
            refunded[order_id].update({i["product_id"]: i["quantity"] for i in props["products"]})
            assert all(qty <= units[pid] for pid, qty in refunded[order_id].items())
            refunded_amount[order_id] += money(props["total"])
            assert refunded_amount[order_id] <= total
            to_pay_back[order_id].append(money(props["total"]))
        elif kind == "payment.refunded":
            assert (props["payment_id"], p["customer_id"]) == (payments[order_id], orders[order_id][0])
            assert Decimal(props["amount"]) == to_pay_back[order_id].pop(0)  # after its Order Refunded
            paid_back += 1
        elif kind == "payment.chargeback":
            assert order_id in payments and order_id not in charged_back and not refunded_amount[order_id]
            assert props["payment_id"] == payments[order_id] and p["customer_id"] == orders[order_id][0]
            assert Decimal(props["amount"]) <= orders[order_id][1]
            charged_back.add(order_id)
    partial = [o for o, amount in refunded_amount.items() if amount < orders[o][1]]
    assert paid_back > 20 and partial and len(partial) < len(refunded_amount) and charged_back


def test_store_returns_refer_to_an_earlier_receipt_of_the_customer_at_that_store(
    journeys: list[dict[str, Any]],
) -> None:
    receipts: dict[str, tuple[str, dict[str, str], Counter[str]]] = {}  # receipt_id -> (store, ids, units)
    returned: dict[str, Counter[str]] = defaultdict(Counter)
    return_ids: set[str] = set()
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        if kind == "pos.sale":
            units = Counter({i["product_id"]: i["quantity"] for i in props["line_items"]})
            receipts[props["receipt_id"]] = (props["store_id"], customer_ids(p), units)
        elif kind == "pos.return":
            store, ids, units = receipts[props["original_receipt_id"]]
            assert (props["store_id"], customer_ids(p)) == (store, ids)
            assert props["till_id"].startswith(f"{store}-") and props["return_id"] not in return_ids
            return_ids.add(props["return_id"])
            returned[props["original_receipt_id"]].update({i["product_id"]: i["quantity"] for i in props["line_items"]})
            assert all(qty <= units[pid] for pid, qty in returned[props["original_receipt_id"]].items())
            assert props["refund_method"] in catalogue.REFUND_METHODS.values()
    assert len(return_ids) > 50


def test_invoices_are_paid_once_after_they_are_issued(journeys: list[dict[str, Any]]) -> None:
    issued: dict[str, tuple[str, Decimal, str]] = {}  # invoice_id -> (customer, amount, currency)
    paid: set[str] = set()
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        if kind == "payment.invoice_issued":
            issued[props["invoice_id"]] = (p["customer_id"], Decimal(props["amount"]), props["currency"])
            terms = datetime.fromisoformat(props["due_at"]) - at(p)  # a few exported late, already due
            assert terms in {timedelta(days=d) for d in catalogue.INVOICE_TERMS_DAYS}
        elif kind == "payment.invoice_paid":
            assert props["invoice_id"] in issued and props["invoice_id"] not in paid
            assert issued[props["invoice_id"]] == (p["customer_id"], Decimal(props["amount"]), props["currency"])
            paid.add(props["invoice_id"])
    assert paid and len(paid) <= len(issued)


def test_a_few_members_join_in_their_chapter_then_renew_lapse_or_cancel_and_go_to_events(
    journeys: list[dict[str, Any]],
) -> None:
    status: dict[str, str] = {}  # customer -> membership status
    chapters: dict[str, str] = {}  # user id -> group
    kinds = Counter[str]()
    for p in journeys:
        kind, props, who = name(p), p.get("properties", {}), p.get("customer_id")
        if kind == "group":
            chapters[p["userId"]] = p["groupId"]
        elif kind.startswith("membership."):
            kinds[kind] += 1
            assert (status.get(who) == "active") == (kind != "membership.started"), (kind, status.get(who))
            status[who] = {"membership.started": "active", "membership.renewed": "active"}.get(kind, kind[11:])
            if kind in ("membership.started", "membership.renewed"):
                assert datetime.fromisoformat(props["expires_at"]) > at(p) and Decimal(props["fee"]) >= 0
        elif kind.startswith("association_event."):
            kinds[kind] += 1
            assert who in status and datetime.fromisoformat(props["starts_at"]).tzinfo is not None
    assert 0 < len(status) <= 100  # members: the last 5% of (at most 2,000) customers
    assert set(chapters) <= set(status) and all(g.startswith("chapter-") for g in chapters.values())
    assert kinds["membership.renewed"] > kinds["membership.lapsed"] > 0 and kinds["membership.cancelled"] > 0
    assert kinds["association_event.registered"] > kinds["association_event.cancelled"] > 0


def test_complaints_in_mentions_comments_and_messages_are_answered_and_some_cases_closed(
    journeys: list[dict[str, Any]],
) -> None:
    complaints: dict[str, tuple[str, datetime]] = {}  # message_id -> (email, when)
    answered: dict[str, tuple[str, datetime]] = {}
    complaining = Counter[tuple[str, bool]]()  # (kind, flagged)
    closed = 0
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        if kind in SOCIAL_KINDS:
            assert ("post_id" in props) == (kind == "social.comment")
            assert ("thread_id" in props) == (kind == "social.direct_message")
            if is_complaint(p):
                complaints[props["message_id"]] = (p["email"], at(p))
                complaining[kind, props["complaint"]] += 1
        elif kind == "support.complaint_responded":
            email, when = complaints.pop(props["message_id"])
            assert p["email"] == email and at(p) > when
            answered[props["message_id"]] = (p["email"], at(p))
        elif kind == "support.case_closed" and "message_id" in props:
            email, when = answered.pop(props["message_id"])  # a complaint support answered, closed once
            assert p["email"] == email and at(p) > when
            closed += 1
    assert {kind for kind, _ in complaining} == SOCIAL_KINDS
    assert complaining["social.comment", False] and complaining["social.direct_message", False]  # by sentiment
    assert closed > 10


def test_cases_are_opened_answered_closed_and_surveyed_and_delivered_products_reviewed(
    journeys: list[dict[str, Any]],
) -> None:
    opened: dict[str, tuple[str, datetime]] = {}  # case_id -> (email, when)
    replied: set[str] = set()
    closed: set[str] = set()
    delivered: set[str] = set()
    channels, surveys, reviews = Counter[str](), Counter[str](), 0
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        if kind == "order.delivered":
            delivered.add(props["order_id"])
        elif kind == "support.case_opened":
            assert props["case_id"] not in opened and ("message_id" in props) == (props["channel"] == "social")
            assert props["channel"] == "social" or props["order_id"] in delivered
            opened[props["case_id"]] = (p["email"], at(p))
            channels[props["channel"]] += 1
        elif kind == "support.note_added":
            assert props["reply"] and props["agent"] and props["case_id"] not in replied
            assert opened[props["case_id"]][1] < at(p)
            replied.add(props["case_id"])
        elif kind == "support.case_closed":
            assert props["case_id"] not in closed and opened[props["case_id"]][0] == p["email"]
            assert props["case_id"] in replied or "message_id" in props  # social cases: answered on social
            closed.add(props["case_id"])
        elif kind == "survey.answered":
            assert props.get("case_id") in closed or props.get("order_id") in delivered
            surveys[props["survey_id"]] += 1
            assert 0 <= props["nps"] <= 10 and 1 <= props["csat"] <= 5
        elif kind == "Product Reviewed":
            assert props["order_id"] in delivered and 1 <= props["rating"] <= 5
            reviews += 1
    assert set(channels) == {"phone", "email", "chat", "store", "social"} and len(closed) > 10
    assert surveys["after-case"] > 0 and surveys["after-delivery"] > 0 and reviews > 10


def test_consent_is_granted_at_sign_up_and_changed_in_the_preference_centre(
    journeys: list[dict[str, Any]],
) -> None:
    consents: dict[str, set[str]] = defaultdict(set)  # userId -> channels in force
    identified: set[str] = set()
    signed_up: set[str] = set()
    previous: dict[str, Any] = {}
    first_identify = False
    grants = Counter[tuple[str, str]]()  # (method, channel)
    withdrawals = 0
    for p in journeys:
        kind, props = name(p), p.get("properties", {})
        if kind == "consent.granted":
            user, channel = p["userId"], props["channel"]
            assert channel not in consents[user] and props["purpose"] == "marketing"
            if props["method"] == "signup_form":  # right after the sign-up's identify (or its other opt-in)
                assert previous.get("userId") == user and (first_identify or name(previous) == "consent.granted")
                assert user not in signed_up or name(previous) == "consent.granted"
                signed_up.add(user)
            else:
                assert props["method"] == "preference_centre"
            consents[user].add(channel)
            grants[props["method"], channel] += 1
        elif kind == "consent.withdrawn":
            assert props["channel"] in consents[p["userId"]], "withdrawn without a grant"
            consents[p["userId"]].remove(props["channel"])
            withdrawals += 1
        elif kind in ("Unsubscribed", "Email Marked as Spam"):  # withdraws e-mail marketing consent too
            consents[p["userId"]].remove("email")
        if kind == "identify":
            first_identify = p["userId"] not in identified
            identified.add(p["userId"])
        elif kind != "consent.granted":
            first_identify = False
        previous = p
    assert grants["signup_form", "email"] > grants["signup_form", "sms"] > 0
    assert grants["preference_centre", "email"] + grants["preference_centre", "sms"] > 0 and withdrawals > 0
    assert len(signed_up) < len(identified)  # most first identifies sign in to an older account


def test_mix_roughly_matches_the_defaults() -> None:
    # few customers, so that over 20,000 outputs each walks many journeys and cart outcomes are observable
    all_ = payloads(run(RetailSimulator(seed=13, customers=300), batches=40))
    assert len(all_) == 20_000
    kinds = Counter(name(p) for p in all_)
    share = {k: v / len(all_) for k, v in kinds.items()}
    complaints = sum(1 for p in all_ if is_complaint(p))
    praise = sum(kinds[k] for k in SOCIAL_KINDS) - complaints
    assert 0.01 <= complaints / len(all_) <= 0.035
    assert praise > 50 and all(
        p["properties"]["sentiment"] < 0 for p in all_ if p.get("properties", {}).get("complaint")
    )
    assert kinds["social.mention"] > kinds["social.comment"] > kinds["social.direct_message"] > 0
    assert 0.008 <= share["payment.failed"] <= 0.025
    browsing = ("Product Viewed", "Product Added", "Product Removed", "Cart Viewed")
    assert sum(share[k] for k in browsing) > 0.5
    assert share["Product Viewed"] > share["pos.sale"] > share["Order Completed"]
    # each order takes payment info, an authorisation and a capture; what goes wrong afterwards is rarer
    assert kinds["Checkout Started"] > kinds["Payment Info Entered"] > kinds["payment.authorised"]
    assert (
        kinds["payment.authorised"]
        > kinds["Order Completed"]
        > kinds["payment.captured"]
        > 0.8 * kinds["Order Completed"]
    )
    assert 0 < kinds["Order Cancelled"] < kinds["Order Refunded"] < 0.2 * kinds["Order Completed"]
    assert 0 < kinds["payment.chargeback"] < 0.02 * kinds["Order Completed"]
    assert 0 < kinds["pos.return"] < 0.15 * kinds["pos.sale"]
    assert 0 < kinds["payment.invoice_paid"] <= kinds["payment.invoice_issued"] < 0.005 * len(all_)
    assert 0 < kinds["consent.withdrawn"] < 0.2 * kinds["consent.granted"]
    reasons = {p["properties"]["reason_code"] for p in all_ if name(p) == "payment.failed"}
    assert {"insufficient_funds", "card_declined", "expired_card", "do_not_honor"} <= reasons

    # a cart is abandoned when its owner starts another cart without having ordered it
    ordered = {p["properties"]["cart_id"] for p in all_ if name(p) == "Order Completed"}
    last_cart: dict[str, str] = {}
    abandoned = set()
    for p in all_:
        if name(p) == "Product Added":
            previous = last_cart.get(p["userId"])
            if previous and previous != p["properties"]["cart_id"] and previous not in ordered:
                abandoned.add(previous)
            last_cart[p["userId"]] = p["properties"]["cart_id"]
    assert 0.08 <= len(abandoned) / (len(abandoned) + len(ordered)) <= 0.18


def test_mix_is_configurable() -> None:
    only_stores = TrafficMix(**{f.name: 0.0 for f in fields(TrafficMix)} | {"pos_sale": 1.0})
    batch = RetailSimulator(seed=2, customers=50, mix=only_stores).next_batch(START, 300)
    assert {g.source for g in batch} == {"pos", "catalog"}  # the catalogue goes first whatever the mix
    no_complaints = TrafficMix(complaint=0.0, support_reply=0.0, service_case=0.0, survey=0.0)
    batch = RetailSimulator(seed=2, mix=no_complaints).next_batch(START, 3000)
    social = [g.payload for g in batch if g.source in ("social", "support") and isinstance(g.payload, dict)]
    assert social and all(p["type"] in SOCIAL_KINDS and not is_complaint(p) for p in social)
    never_shipped = TrafficMix(payment_capture=0.0, order_refund=5.0, chargeback=5.0)
    kinds = {name(p) for p in payloads(run(RetailSimulator(seed=2, mix=never_shipped), batches=6))}
    assert "Order Completed" in kinds and "Order Cancelled" in kinds
    assert not kinds & {"payment.captured", "Order Refunded", "payment.refunded", "payment.chargeback"}
    with pytest.raises(ValueError):
        RetailSimulator(mix=TrafficMix(**{f.name: 0.0 for f in fields(TrafficMix)}))
    with pytest.raises(ValueError):
        RetailSimulator(bad_fraction=1.5)


# -- deliberately bad outputs -----------------------------------------------------------------------------


def defect(g: Generated) -> str | None:
    """Which kind of bad output ``g`` is, or None when it is a valid message."""
    if isinstance(g.payload, bytes):
        try:
            json.loads(g.payload)
        except ValueError:
            return "invalid_json"
        return "bytes_but_valid_json"
    if g.source == "web" and not is_native(g):
        return "bad_segment" if segment_problems(g.payload) else None
    try:
        validate_event(g.payload)
    except ValidationError as exc:
        types = {e["type"] for e in exc.errors()}
        return "missing_field" if types == {"missing"} else "wrong_type"
    return None


def test_no_bad_outputs_by_default(traffic: list[tuple[datetime, Generated]]) -> None:
    assert Counter(defect(g) for _, g in traffic) == {None: len(traffic)}


def test_bad_fraction_gives_each_kind_of_bad_output() -> None:
    traffic = run(RetailSimulator(seed=5, bad_fraction=0.05), batches=10)
    outputs = [g for _, g in traffic]
    kinds = Counter(defect(g) for g in outputs)
    assert set(kinds) == {None, "invalid_json", "wrong_type", "missing_field"}
    assert 0.03 <= (len(outputs) - kinds[None]) / len(outputs) <= 0.07
    wrong = [g.payload for g in outputs if defect(g) == "wrong_type" and isinstance(g.payload, dict)]
    assert wrong and all(p["properties"]["total"] == "lots" for p in wrong)
    for now, g in traffic:  # ingest takes the good ones and rejects the bad ones
        value = g.payload if isinstance(g.payload, bytes) else orjson.dumps(g.payload)
        assert isinstance(decode_raw(RawInput(g.source, value, now)), Rejection) == (defect(g) is not None)
    # a broken sale is never returned: every return refers to a receipt ingest accepted
    accepted = {p["properties"]["receipt_id"] for p in payloads(traffic) if name(p) == "pos.sale" and not defect_of(p)}
    returns = [p for p in payloads(traffic) if name(p) == "pos.return"]
    assert returns and all(p["properties"]["original_receipt_id"] in accepted for p in returns)


def defect_of(payload: dict[str, Any]) -> str | None:
    return defect(Generated(str(payload.get("source", "web")), "key", payload))
