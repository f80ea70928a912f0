"""``crmhub up``'s supervision on the real embedded stack: a service or the API killed mid-stream is
restarted by the hub, counted, and no acknowledged order is lost or counted twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import api_client, child, profile_by, restarts, sigkill, uid, wait_for

pytestmark = pytest.mark.integration
CUSTOMERS = 20
ORDERS = 300  # 15 each, 10.01 each
# how long the sender retries one order: the restarted API answers ~3 s after its kill alone, but took over
# 20 s once in CI beside another test module's hub (its imports alone take 2.5 s of a contended core)
RETRY_S = 120


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("supervised"),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        write_keys="test-web-key:web",
        api_token="test-token",
        batch_size=50,  # small transactions: the kill lands between them
    )
    with running_hub(settings, services=("ingest", "profile", "api"), supervise=True) as running:
        yield running


def accepted(client: httpx.Client, body: object) -> bool:
    try:
        return client.post("/v1/track", json=body).status_code == 200
    except httpx.TransportError:
        return False


def post_orders(port: int, run: str) -> None:
    """The orders, one request each, through the collector; a request the API could not answer (it is
    being restarted) is sent again, as an SDK retries."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("test-web-key", ""), timeout=5) as client:
        for n in range(ORDERS):
            body = {
                "userId": f"{run}-c{n % CUSTOMERS}",
                "event": "Order Completed",
                "messageId": f"{run}-m{n}",
                "properties": {"order_id": f"{run}-o{n}", "total": "10.01", "currency": "EUR"},
            }
            deadline = time.monotonic() + RETRY_S
            while not accepted(client, body):
                if time.monotonic() > deadline:
                    raise AssertionError(f"order {n} was not accepted within {RETRY_S} s")
                time.sleep(0.2)
            time.sleep(0.01)


def test_killed_services_and_api_are_restarted_and_no_order_is_lost(hub: Hub) -> None:
    run = uid("sup")
    with ThreadPoolExecutor(1) as pool:
        sender = pool.submit(post_orders, hub.settings.api_port, run)
        profile, api_child = child(hub, "profile"), child(hub, "api")
        time.sleep(1.5)
        killed_profile = sigkill(profile)
        wait_for(lambda: profile.proc.pid != killed_profile and profile.proc.poll() is None, 30, "profile restarted")
        killed_api = sigkill(api_child)
        wait_for(lambda: api_child.proc.pid != killed_api and api_child.proc.poll() is None, 30, "API restarted")
        sender.result(timeout=240)  # the sender's own failure, if it had one
    assert hub.failure is None
    with api_client(hub.settings) as api:
        wait_for(lambda: api.get("/health").status_code == 200, 30, "the restarted API")

        def exact() -> bool:
            profiles = [profile_by(api, user_id=f"{run}-c{i}") for i in range(CUSTOMERS)]
            want = (ORDERS // CUSTOMERS, Decimal("150.15"))
            return all(p is not None and (p["order_count"], Decimal(p["total_spent"])) == want for p in profiles)

        wait_for(exact, 90, "every customer's 15 orders, exactly once")
        assert restarts(api) == {"profile": 1.0, "api": 1.0}
    assert "restarted by the hub" in Path(child(hub, "profile").log_path).read_text()
    assert all(c.proc.poll() is None for c in hub.children)
