"""Reports on the real stack: orders in two channels, stores and payment methods across two months, a
store return and an answered complaint, then every figure of /v1/reports checked exactly. The events are
dated 2011 and the stores and methods are this test's own, so the shared hub's other traffic is not in
the figures read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from crmhub.hub import Hub
from tests.integration.helpers import complaint_mention, profile_by, publish, segment_track, uid, wait_for

pytestmark = pytest.mark.integration


def web_order(user: str, total: str, when: str, method: str) -> dict[str, Any]:
    props = {"order_id": uid("o-"), "total": total, "currency": "EUR", "payment_method": method}
    return {**segment_track("Order Completed", props, uid("anon-"), user), "timestamp": when}


def till(kind: str, user: str, store: str, when: str, **props: Any) -> dict[str, Any]:
    props = {"store_id": store, "till_id": "t1", "currency": "EUR", **props}
    return {"event_id": uid("pos-"), "source": "pos", "type": kind, "occurred_at": when, "customer_id": user,
            "properties": props}  # fmt: skip


def test_reports_figures_are_exact(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    ann, bob, cat = uid("ann-"), uid("bob-"), uid("cat-")
    north, south, paypal = uid("north-"), uid("south-"), uid("paypal-")
    receipt = uid("r-")
    first = web_order(ann, "10.00", "2011-01-10T09:00:00Z", paypal)
    publish(producer, "web", first, first, web_order(cat, "7.00", "2011-02-03T09:00:00Z", paypal))
    publish(
        producer,
        "pos",
        till("pos.sale", ann, north, "2011-02-11T12:00:00Z", receipt_id=uid("r-"), total="20.00",
             tenders=[{"method": "card", "amount": "20.00"}]),
        till("pos.sale", bob, south, "2011-01-20T12:00:00Z", receipt_id=receipt, total="5.50",
             tenders=[{"method": "cash", "amount": "5.50"}]),
        till("pos.return", bob, south, "2011-02-01T12:00:00Z", return_id=uid("x-"), original_receipt_id=receipt,
             total="2.50"),
    )  # fmt: skip
    email, mention = f"{uid('c')}@example.com", uid("mention-")
    publish(producer, "social", {**complaint_mention(email, mention), "occurred_at": "2011-01-05T10:00:00Z"})
    answer = {"message_id": mention, "agent": "sam"}
    reply = {"event_id": uid("r-"), "source": "support", "type": "support.complaint_responded",
             "occurred_at": "2011-01-05T10:02:05Z", "email": email, "properties": answer}  # fmt: skip
    publish(producer, "support", reply)
    for user, orders in ((ann, 2), (bob, 1), (cat, 1)):
        wait_for(lambda u=user, n=orders: (p := profile_by(api, user_id=u)) and p["order_count"] == n, what="orders")
    bob_profile = wait_for(lambda: (p := profile_by(api, user_id=bob)) and p["return_count"] == 1 and p, what="return")
    wait_for(lambda: (p := profile_by(api, email=email)) and p["complaints_answered"] == 1, what="complaint answered")

    window = {"from": "2011-01-01", "to": "2011-02-28"}
    by_channel = api.get("/v1/reports/sales", params={"by": "channel", "period": "month", **window}).json()["rows"]
    assert by_channel == [
        {
            "period": "2011-01-01",
            "channel": "pos",
            "currency": "EUR",
            "orders": 1,
            "gross": "5.5",
            "refunded": "2.5",
            "net": "3",
        },
        {
            "period": "2011-01-01",
            "channel": "web",
            "currency": "EUR",
            "orders": 1,
            "gross": "10",
            "refunded": "0",
            "net": "10",
        },
        {
            "period": "2011-02-01",
            "channel": "pos",
            "currency": "EUR",
            "orders": 1,
            "gross": "20",
            "refunded": "0",
            "net": "20",
        },
        {
            "period": "2011-02-01",
            "channel": "web",
            "currency": "EUR",
            "orders": 1,
            "gross": "7",
            "refunded": "0",
            "net": "7",
        },
    ]  # fmt: skip  (the return goes back to its receipt's month; the re-sent order counts once)
    stores = api.get("/v1/reports/sales", params={"by": "store", "period": "month", **window}).json()["rows"]
    mine = {(r["period"], r["store"]): (r["orders"], r["net"]) for r in stores if r["store"] in (north, south)}
    assert mine == {("2011-01-01", south): (1, "3"), ("2011-02-01", north): (1, "20")}
    methods = api.get("/v1/reports/sales", params={"by": "payment_method", "period": "week", **window}).json()["rows"]
    assert [(r["period"], r["orders"], r["gross"]) for r in methods if r["payment_method"] == paypal] == [
        ("2011-01-10", 1, "10"),  # a Monday
        ("2011-01-31", 1, "7"),
    ]
    cohorts = {c["cohort"]: c for c in api.get("/v1/reports/cohorts").json()["cohorts"]}
    assert (cohorts["2011-01"]["customers"], cohorts["2011-01"]["repeat_customers"]) == (2, 1)
    assert cohorts["2011-01"]["repeat_rate"] == 0.5
    assert {k: v["customers"] for k, v in cohorts["2011-01"]["retention"].items()} == {"0": 2, "1": 1}
    assert cohorts["2011-02"]["customers"] == 1 and cohorts["2011-02"]["retention"]["0"]["rate"] == 1.0

    complaints = api.get("/v1/reports/complaints", params={"from": "2011-01-01", "to": "2011-12-31"}).json()
    assert (complaints["answered"], complaints["p50_s"], complaints["p90_s"]) == (1, 125, 125)
    assert complaints["within_sla"] == {"high": 1.0, "normal": 1.0, "low": 1.0}  # 900 s, 3600 s, 14400 s

    top = api.get("/v1/reports/top-customers", params={"limit": 1000, "currency": "EUR"}).json()["by_currency"]["EUR"]
    assert {"profile_id": bob_profile["profile_id"], "net_revenue": "3"} in top
    assert [float(t["net_revenue"]) for t in top] == sorted((float(t["net_revenue"]) for t in top), reverse=True)

    assert api.get("/v1/reports/journeys").status_code == 200
    bad = api.get("/v1/reports/sales", params={"by": "colour"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("by:")
    assert api.get("/v1/reports/sales", params={"from": "2011-13-01"}).json()["detail"].startswith("from:")
