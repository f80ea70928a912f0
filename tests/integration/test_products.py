"""Products owned and order fulfilment on the session's real stack, end to end.

Products: a ``product.upserted`` on ``crm.raw.catalog.v1`` and a ``crmhub catalog load`` of a file go to
the catalogue; a web order of the
product becomes an owned item dated from it (the seed's kettle, bought 23 months ago with a 24-month
warranty); the customer enters the ``successor_available`` segment, and a warranty journey (date trigger
on ``warranty_ends``, 30 days before) sends its offer on the day, once. Fulfilment: shipment events set
the order's status and enter the delivery segments; a failed delivery raises its alert at once; a promise
passed without a delivery fires the late-delivery journey; a delivery enters the review journey's wait.
Date-based parts use dates in the past so that the trigger is due at once (as test_journeys does).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis
from kafka import KafkaProducer

from crmhub.hub import Hub
from schemas.readmodels.catalog import CatalogReader
from tests.integration.helpers import (
    alerts,
    crmhub,
    due_day,
    now_iso,
    profile_by,
    publish,
    segment_track,
    segments,
    uid,
    wait_for,
    wait_journeys_in_force,
)

pytestmark = pytest.mark.integration


def journey(journey_id: str, trigger: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": journey_id, "status": "active", "trigger": trigger, "reentry": "parallel", "steps": list(steps)}


@dataclass
class Journeys:
    hub: Hub
    api: httpx.Client
    made: list[str]

    def make(self, *docs: dict[str, Any]) -> None:
        """Make the journeys and wait until the notifier runs them: a date is scheduled when a profile
        changes, so a profile changed before its journey is in force waits for its next change."""
        for doc in docs:
            response = self.api.post("/v1/journeys", json=doc)
            assert response.status_code == 201, response.text
            self.made.append(doc["id"])
        wait_journeys_in_force(self.hub.settings, *(f"{doc['id']} v1 active" for doc in docs))


@pytest.fixture
def journeys(hub: Hub, api: httpx.Client) -> Iterator[Journeys]:
    """Journeys this module makes active; deleted after it, so the session's other tests do not run them."""
    made = Journeys(hub, api, [])
    yield made
    for journey_id in made.made:
        api.delete(f"/v1/journeys/{journey_id}")


def native(type_: str, user: str, **props: Any) -> dict[str, Any]:
    """A native event of the shop's back office (crm.raw.web.v1)."""
    event = {"event_id": uid("f-"), "source": "web", "type": type_, "occurred_at": now_iso()}
    return {**event, "customer_id": user, "properties": props}


def test_a_kettle_bought_23_months_ago_gets_the_extended_warranty_offer_on_the_day(
    api: httpx.Client, producer: KafkaProducer, journeys: Journeys
) -> None:
    offer = uid("warranty-")
    step = {"name": "offer", "send": "topic", "template": "extend it by {{ trigger.data.date }}"}
    journeys.make(journey(offer, {"date": "warranty_ends", "offset": "-30d", "at": "09:00"}, step))
    kettle, successor, user = uid("kettle-"), uid("kettle-2-"), uid("k-")
    product = {"product_id": kettle, "category": "home", "price": "39.90", "currency": "EUR"}
    product |= {"warranty_months": 24, "lifespan_months": 60, "successor_id": successor}
    upsert = {"event_id": uid("cat-"), "source": "catalog", "type": "product.upserted", "occurred_at": now_iso()}
    publish(producer, "catalog", {**upsert, "properties": product})
    ends = due_day() + timedelta(days=30)  # the warranty ends in 30 days: the offer is due this morning
    bought = datetime(ends.year - 2, ends.month, ends.day, 12, tzinfo=UTC)  # 23 months ago, 24 months' warranty
    lines = [{"product_id": kettle, "price": 39.9, "quantity": 1}]
    props = {"order_id": uid("o-"), "total": 39.9, "currency": "EUR", "products": lines}
    order = segment_track("Order Completed", props, uid("a-"), user)
    publish(producer, "web", {**order, "timestamp": bought.isoformat()})

    def dated() -> dict[str, Any] | None:
        p = profile_by(api, user_id=user)
        return p if p and p["owned_items"] and p["owned_items"][0]["warranty_until"] else None

    bulk = journeys.hub.settings.data_dir / f"{successor}.jsonl"  # the successor comes by a bulk load
    bulk.write_bytes(orjson.dumps({"product_id": successor, "category": "home", "warranty_months": 36}) + b"\n")
    loaded = crmhub(journeys.hub, "catalog", "load", str(bulk))
    assert loaded.returncode == 0, loaded.stderr
    catalog = CatalogReader(redis.Redis.from_url(journeys.hub.settings.redis_dsn))
    found = wait_for(lambda: catalog.products([successor]), 30, what="the bulk-loaded product in the catalogue")
    assert found[successor].warranty_months == 36
    item = wait_for(dated, 30, what="the kettle owned, dated from the catalogue")["owned_items"][0]
    pid = profile_by(api, user_id=user)["profile_id"]  # type: ignore[index]
    assert (item["product_id"], item["successor_id"], item["catalogued"]) == (kettle, successor, True)
    assert item["warranty_until"].startswith(ends.isoformat())
    wait_for(lambda: "successor_available" in segments(api, pid), 30, what="the successor segment")
    (sent,) = wait_for(lambda: alerts(api, pid, "journey"), 30, what="the extended-warranty offer")
    assert sent["summary"] == f"extend it by {due_day().isoformat()}"
    time.sleep(2)
    assert len(alerts(api, pid, "journey")) == 1  # once


def test_shipments_set_the_status_alert_on_failed_and_late_deliveries_and_ask_for_a_review(
    api: httpx.Client, producer: KafkaProducer, journeys: Journeys
) -> None:
    late, review = uid("late-"), uid("review-")
    alert = {"name": "alert", "send": "topic", "kind": "delivery_late", "template": "late: {{ trigger.data.date }}"}
    ask = {"name": "ask", "send": "topic", "template": "review {{ trigger.data.order_id }}"}
    journeys.make(
        journey(late, {"date": "delivery_promises", "offset": "1d", "at": "09:00"}, alert),
        journey(review, {"event": "order.delivered", "occurrence": "order_id"}, {"name": "week", "wait": "7d"}, ask),
    )
    user, waiting, failing, arrived = uid("f-"), uid("o-"), uid("o-"), uid("o-")
    promised = datetime.combine(due_day() - timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=18)
    for order_id in (waiting, failing, arrived):
        props = {"order_id": order_id, "total": 20.0, "products": [{"product_id": "mug", "price": 20.0}]}
        publish(producer, "web", segment_track("Order Completed", props, uid("a-"), user))
    promise = promised.isoformat()
    publish(
        producer,
        "web",
        native("order.shipped", user, order_id=waiting, carrier="DHL", tracking_number="T-1", promised_by=promise),
        native("order.shipped", user, order_id=failing, carrier="UPS"),
        native("order.delivery_failed", user, order_id=failing, reason="nobody home"),
        native("order.shipped", user, order_id=arrived, carrier="DPD", promised_by=promise),
        native("order.delivered", user, order_id=arrived),
    )

    def shipped() -> dict[str, Any] | None:
        p = profile_by(api, user_id=user)
        orders = p["recent_orders"] if p else {}
        statuses = {o: orders[o]["status"] for o in (waiting, failing, arrived) if o in orders}
        return p if statuses == {waiting: "shipped", failing: "delivery_failed", arrived: "delivered"} else None

    p = wait_for(shipped, 30, what="the orders' statuses")
    pid, order = p["profile_id"], p["recent_orders"][waiting]
    assert (order["carrier"], order["tracking_number"], order["promised_by"][:10]) == (
        "DHL",
        "T-1",
        str(promised.date()),
    )
    wait_for(lambda: {"awaiting_delivery", "delivery_trouble"} <= segments(api, pid), 30, what="delivery segments")
    (failed,) = wait_for(lambda: alerts(api, pid, "delivery_failed"), 30, what="the failed-delivery alert")
    assert failed["details"]["order_id"] == failing and failed["details"]["carrier"] == "UPS"
    (overdue,) = wait_for(lambda: alerts(api, pid, "delivery_late"), 30, what="the late-delivery alert")
    assert overdue["summary"] == f"late: {due_day().isoformat()}"
    counts = wait_for(lambda: (c := api.get(f"/v1/journeys/{review}").json()["steps"][0]["counts"]) and c, 30)
    assert int(counts["entered"]) == 1 and int(counts.get("waiting", 0)) == 1  # asks in a week
