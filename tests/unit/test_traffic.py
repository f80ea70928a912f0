"""The synthetic retail traffic generator: determinism, message shapes, journeys, mix and bad outputs."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from crmhub.demo import catalogue
from crmhub.demo.traffic import Generated, RetailSimulator, TrafficMix
from schemas.events import validate_event

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
}
NATIVE_SOURCES = {"pos", "payment", "social", "support"}
E164 = re.compile(r"^\+(49|1)\d{10,11}$")


def run(sim: RetailSimulator, batches: int, size: int = 500) -> list[tuple[datetime, Generated]]:
    out: list[tuple[datetime, Generated]] = []
    for i in range(batches):
        now = START + timedelta(seconds=i)
        out.extend((now, g) for g in sim.next_batch(now, size))
    return out


@pytest.fixture(scope="module")
def traffic() -> list[tuple[datetime, Generated]]:
    return run(RetailSimulator(seed=11), batches=40)  # 20,000 outputs, bad_fraction=0


def payloads(traffic: list[tuple[datetime, Generated]]) -> list[dict[str, Any]]:
    return [g.payload for _, g in traffic if isinstance(g.payload, dict)]


def name(payload: dict[str, Any]) -> str:
    return str(payload.get("event") or payload["type"])


def segment_problems(msg: dict[str, Any]) -> list[str]:
    """What makes ``msg`` not a Segment tracking API track/identify message (empty if it is one)."""
    problems = [f"unexpected key {k}" for k in set(msg) - SEGMENT_KEYS]
    if msg.get("type") not in ("track", "identify"):
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
    web = [g for _, g in traffic if g.source == "web"]
    assert len(web) > 10_000
    for g in web:
        assert isinstance(g.payload, dict)
        assert segment_problems(g.payload) == [], g.payload
        assert g.key == g.payload["anonymousId"]
        validate_event(as_envelope(g.payload))
    events = Counter(name(g.payload) for g in web if isinstance(g.payload, dict))
    expected = {"identify", "Product Viewed", "Product Added", "Product Removed", "Checkout Started"}
    assert expected | {"Order Completed"} <= set(events)


def test_native_outputs_validate_against_the_event_contract(
    traffic: list[tuple[datetime, Generated]],
) -> None:
    native = [g for _, g in traffic if g.source != "web"]
    assert {g.source for g in native} == NATIVE_SOURCES
    for g in native:
        assert isinstance(g.payload, dict)
        event = validate_event(g.payload)
        assert event.source == g.source
        assert g.key in event.identifiers().values()


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


def test_order_totals_are_the_sum_of_their_lines(traffic: list[tuple[datetime, Generated]]) -> None:
    seen = Counter[str]()
    for p in payloads(traffic):
        kind = name(p)
        props = p.get("properties", {})
        if kind == "Order Completed":
            assert Decimal(str(props["total"])) == Decimal(str(props["revenue"])) == line_sum(props["products"])
            assert props["currency"] in ("EUR", "USD")
        elif kind == "Checkout Started":
            assert Decimal(str(props["value"])) == line_sum(props["products"])
        elif kind == "pos.sale":
            assert Decimal(props["total"]) == line_sum(props["line_items"])
            assert sum(Decimal(t["amount"]) for t in props["tenders"]) == Decimal(props["total"])
        else:
            continue
        seen[kind] += 1
    assert min(seen.values()) > 100 and len(seen) == 3


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
        elif kind in ("Product Removed", "Checkout Started", "Order Completed"):
            assert carts.get(props["cart_id"]) == p["userId"], f"{kind} before Product Added"
        if kind == "Checkout Started":
            checkouts.add(props["order_id"])
        elif kind == "Order Completed":
            assert props["order_id"] in checkouts
        elif kind == "social.mention" and props["complaint"]:
            complaints[props["message_id"]] = (p["email"], datetime.fromisoformat(p["occurred_at"]))
        elif kind == "support.complaint_responded":
            email, at = complaints.pop(props["message_id"])  # an earlier complaint, answered once
            assert p["email"] == email and datetime.fromisoformat(p["occurred_at"]) > at
            replies += 1
    assert replies > 100


def test_mix_roughly_matches_the_defaults() -> None:
    # few customers, so that over 20,000 outputs each walks many journeys and cart outcomes are observable
    all_ = payloads(run(RetailSimulator(seed=13, customers=300), batches=40))
    assert len(all_) == 20_000
    kinds = Counter(name(p) for p in all_)
    share = {k: v / len(all_) for k, v in kinds.items()}
    complaints = sum(1 for p in all_ if name(p) == "social.mention" and p["properties"]["complaint"])
    praise = kinds["social.mention"] - complaints
    assert 0.01 <= complaints / len(all_) <= 0.035
    assert praise > 50 and all(
        p["properties"]["sentiment"] < 0 for p in all_ if p.get("properties", {}).get("complaint")
    )
    assert 0.008 <= share["payment.failed"] <= 0.025
    browsing_and_cart = sum(share.get(k, 0) for k in ("Product Viewed", "Product Added", "Product Removed"))
    assert browsing_and_cart > 0.5 and share["Product Viewed"] > share["pos.sale"] > share["Order Completed"]
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
    assert {g.source for g in batch} == {"pos"}
    no_complaints = TrafficMix(complaint=0.0, support_reply=0.0)
    batch = RetailSimulator(seed=2, mix=no_complaints).next_batch(START, 3000)
    social = [g.payload for g in batch if g.source in ("social", "support") and isinstance(g.payload, dict)]
    assert social and all(p["type"] == "social.mention" and not p["properties"]["complaint"] for p in social)
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
    if g.source == "web":
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
    outputs = [g for _, g in run(RetailSimulator(seed=5, bad_fraction=0.05), batches=10)]
    kinds = Counter(defect(g) for g in outputs)
    assert set(kinds) == {None, "invalid_json", "wrong_type", "missing_field"}
    assert 0.03 <= (len(outputs) - kinds[None]) / len(outputs) <= 0.07
    wrong = [g.payload for g in outputs if defect(g) == "wrong_type" and isinstance(g.payload, dict)]
    assert wrong and all(p["properties"]["total"] == "lots" for p in wrong)
