"""Nothing the collector acknowledged is lost when the whole machine stops: ``crmhub up`` with every one of
its processes SIGKILLed mid-stream (broker, Redis, services, API), started again on the same data dir.

The embedded broker keeps records in memory only; the collector's journal is the durable step. Orders
acknowledged before the kill come back through the journal (the new broker is empty), orders refused or
unanswered are sent again as an SDK would, and some acknowledged ones are sent again too (an answer
lost on the way): every order counts exactly once, and so does every product view (views, unlike
orders, carry no id of their own a fold could recognise: only the journal's seq tells a replay apart).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from crmhub.core.net import free_port
from tests.integration.helpers import uid, wait_for

pytestmark = pytest.mark.integration
CUSTOMERS = 30
ORDERS = 900
PRICE = Decimal("7.35")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class HubProcess:
    """``crmhub up`` in a process of its own, as a user runs it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {"kafka-port": free_port(), "redis-port": free_port(), "api-port": free_port()}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api-port']}"

    def start(self) -> None:
        args = [sys.executable, "-m", "crmhub.cli", "up", "--data-dir", str(self.data_dir)]
        args += [f"--{k}={v}" for k, v in self.ports.items()]
        args += ["--write-keys=test-web-key:web", "--api-token=test-token", "--batch-size=100"]
        log = (self.data_dir.parent / f"{self.data_dir.name}-up.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._healthy(), 90, "crmhub up to answer")

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "crmhub up exited"
        try:
            return httpx.get(self.api + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill_everything(self) -> None:
        """SIGKILL the hub and every process it started at once: what a power cut does to them."""
        assert self.proc is not None
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill_everything()


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
