"""Nothing the collector acknowledged is lost when the whole machine stops: ``crmhub up`` with every one of
its processes SIGKILLed mid-stream (broker, Redis, services, API), started again on the same data dir.

The embedded broker keeps records in memory only; the collector's journal is the durable step. Orders
acknowledged before the kill come back through the journal (the new broker is empty), orders refused or
unanswered are sent again as an SDK would, and some acknowledged ones are sent again too (an answer
lost on the way): every order counts exactly once, and so does every product view (views, unlike
orders, carry no id of their own a fold could recognise: only the journal's seq tells a replay apart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import HubProcess, uid, wait_for

pytestmark = pytest.mark.integration
CUSTOMERS = 30
ORDERS = 900
PRICE = Decimal("7.35")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    running = HubProcess(tmp_path / "data")
    running.start()
    yield running
    running.stop()


def order(run: str, n: int) -> dict[str, object]:
    """Input ``n``: an order, or (odd ``n``) a product view."""
    user, message = f"{run}-c{(n // 2) % CUSTOMERS}", f"{run}-m{n}"
    if n % 2:
        props: dict[str, object] = {"product_id": f"p-{n}", "price": "1.00", "category": "kitchen"}
        return {"type": "track", "userId": user, "event": "Product Viewed", "messageId": message, "properties": props}
    props = {"order_id": f"{run}-o{n}", "total": str(PRICE), "currency": "EUR"}
    return {"type": "track", "userId": user, "event": "Order Completed", "messageId": message, "properties": props}


class Sender(threading.Thread):
    """Posts the orders in batches of 10 and records which batches were acknowledged (200)."""

    def __init__(self, hub: HubProcess, run: str) -> None:
        super().__init__(daemon=True)
        self.hub, self.run_id = hub, run
        self.acked: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(auth=("test-web-key", ""), timeout=5) as client:
            for start in range(0, ORDERS, 10):
                if self.stop.is_set():
                    return
                batch = [order(self.run_id, n) for n in range(start, start + 10)]
                try:
                    if client.post(self.hub.api + "/v1/batch", json={"batch": batch}).status_code == 200:
                        self.acked.update(range(start, start + 10))
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)


def test_acknowledged_orders_survive_a_kill_of_every_process(hub: HubProcess) -> None:
    run = uid("dur")
    sender = Sender(hub, run)
    sender.start()
    wait_for(lambda: len(sender.acked) >= ORDERS // 3, 60, "a third of the orders acknowledged")
    hub.kill_everything()
    sender.stop.set()
    sender.join(30)
    acked_before = set(sender.acked)
    assert 0 < len(acked_before) < ORDERS

    hub.start()  # the same data dir: journal, Redis's append-only file, SQLite
    resend = [n for n in range(ORDERS) if n not in acked_before] + sorted(acked_before)[:50]
    with httpx.Client(auth=("test-web-key", ""), timeout=10) as client:
        for start in range(0, len(resend), 10):
            batch = [order(run, n) for n in resend[start : start + 10]]
            response = client.post(hub.api + "/v1/batch", json={"batch": batch})
            assert response.status_code == 200, response.text
    api = httpx.Client(base_url=hub.api, headers={"Authorization": "Bearer test-token"}, timeout=10)

    def totals() -> dict[str, tuple[int, Decimal, int]] | None:
        found = {}
        for c in range(CUSTOMERS):
            response = api.get("/v1/profiles", params={"user_id": f"{run}-c{c}"})
            if response.status_code != 200:
                return None
            p = response.json()
            found[f"c{c}"] = (p["order_count"], Decimal(p["total_spent"]), p["product_views"])
        return found

    each = ORDERS // 2 // CUSTOMERS  # orders, and as many views, per customer
    want = {f"c{c}": (each, PRICE * each, each) for c in range(CUSTOMERS)}
    try:
        wait_for(lambda: totals() == want, 120, "every order counted exactly once")
    except AssertionError:
        print("totals:", totals())
        raise
    finally:
        api.close()


CART_DELAY_S = 40.0


def test_a_pending_cart_alert_fires_once_and_not_early_after_every_process_was_killed(tmp_path: Path) -> None:
    """The cart journey's wait lives in faust tables the embedded broker held: after the kill it is entered
    again from SQL (the profile service hands the recent profiles again to a new broker), counted from the
    cart's last change."""
    hub = HubProcess(tmp_path / "data", f"--abandonment-delay-s={CART_DELAY_S}")
    hub.start()
    try:
        user = uid("cart")
        item = {"product_id": "p-kettle", "name": "Kettle", "price": "39.90", "quantity": 1, "category": "kitchen"}
        body = {"userId": user, "event": "Product Added", "messageId": uid("m"), "properties": item}
        assert httpx.post(hub.api + "/v1/track", json=body, auth=("test-web-key", "")).status_code == 200
        api = httpx.Client(base_url=hub.api, headers={"Authorization": "Bearer test-token"}, timeout=10)
        profile = wait_for(
            lambda: (
                (r := api.get("/v1/profiles", params={"user_id": user})).status_code == 200
                and r.json()["cart"]["items"]
                and r.json()
            ),
            60,
            "the cart in the profile store",
        )
        api.close()
        hub.kill_everything()
        hub.start()
        api = httpx.Client(base_url=hub.api, headers={"Authorization": "Bearer test-token"}, timeout=10)
        pid = profile["profile_id"]

        def cart_alerts() -> list[dict[str, object]]:
            found = api.get("/v1/alerts", params={"kind": "cart_abandoned", "customer": pid}).json()
            return list(found)

        (alert,) = wait_for(cart_alerts, CART_DELAY_S + 90, "the cart alert after the restart")
        due = datetime.fromisoformat(profile["cart"]["updated_at"]) + timedelta(seconds=CART_DELAY_S)
        assert datetime.fromisoformat(str(alert["raised_at"])) >= due, "not early"
        time.sleep(5)
        assert len(cart_alerts()) == 1, "once"
        api.close()
    finally:
        hub.stop()
