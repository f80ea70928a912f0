"""Chaos on a supervised hub (what ``crmhub up`` runs): thousands of mixed events — orders with re-sends,
identity merges, carts abandoned or bought, complaints answered or not, payment failures — sent through
the real Segment Python SDK and ``POST /v1/events``, while ingest, profile, segmenter, notifier and the API
are each SIGKILLed once mid-stream and restarted by the hub.

At the end every customer's order count and money are exact, every cause has exactly one alert (in the
alert log and on ``crm.alerts.v1``), segment membership equals a fresh evaluation of every stored profile,
and the hub still runs with all its children.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from segment.analytics import Client

from crmhub.core.metrics import rss_mb
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.topics import ALERTS
from crmhub.hub import Hub, running_hub
from schemas.readmodels.segments import members_key, profile_segments_key
from tests.integration.helpers import (
    api_client,
    child,
    fresh_membership,
    now_iso,
    profile_by,
    read_to_end,
    restarts,
    sigkill,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration

CUSTOMERS = 300
RATE = 150  # events a second into the SDK: the stream lasts about 20 s, the kills land inside it
CART_DELAY_S = 45.0  # longer than the stream takes to pass a restarted service (a bought cart must not alert)
KILLED = ("ingest", "profile", "segmenter", "notifier", "api")
WRITE_KEYS = {"web": "chaos-web-key", "social": "chaos-social-key", "support": "chaos-support-key"}
WRITE_KEYS["payment"] = "chaos-payment-key"


def chaos_settings(data_dir: Path, **extra: Any) -> Settings:
    """The chaos stream's hub on ``data_dir``; ``extra`` settings added or overriding these."""
    defaults: dict[str, Any] = {
        "data_dir": data_dir,
        "kafka_port": free_port(),
        "redis_port": free_port(),
        "api_port": free_port(),
        "write_keys": ",".join(f"{key}:{source}" for source, key in WRITE_KEYS.items()),
        "api_token": "test-token",
        "abandonment_delay_s": CART_DELAY_S,
        "browse_abandonment_delay_s": 0,  # off: every customer views products
        "complaint_sla": "high:86400,normal:86400,low:86400",  # level 1 only: one alert per complaint
        "batch_size": 200,  # several transactions per second: the kills land between and inside them
    }
    return Settings(**(defaults | extra))


@pytest.fixture
def chaos_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(chaos_settings(tmp_path_factory.mktemp("chaos")), supervise=True) as hub:
        yield hub


@dataclass
class Expected:
    """What the stream must leave behind, per customer (user id)."""

    orders: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # user -> order id -> total
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, user) -> alerts
    failures: dict[str, int] = field(default_factory=dict)  # user -> failed payments of its one order
    answered: list[tuple[str, str]] = field(default_factory=list)  # (user, mention id) to answer later
    open_complaints: dict[str, int] = field(default_factory=dict)  # user -> complaints left unanswered


Step = Callable[[Client, httpx.Client], None]


def order_step(user: str | None, anon: str | None, order_id: str, total: Decimal, message_id: str) -> Step:
    props = {"order_id": order_id, "total": str(total), "currency": "EUR", "products": [product(order_id)]}
    return lambda sdk, _: sdk.track(
        user_id=user, anonymous_id=anon, event="Order Completed", properties=props, message_id=message_id
    )


def product(seed: str) -> dict[str, Any]:
    pid = f"p-{zlib.crc32(seed.encode()) % 40}"
    return {"product_id": pid, "name": "Kettle", "price": "9.99", "quantity": 1, "category": "home"}


def viewed(user: str, n: int) -> Step:
    return lambda sdk, _: sdk.track(user, "Product Viewed", product(f"{user}-{n}"))


def envelope(source: str, user: str, kind: str, props: dict[str, Any]) -> dict[str, Any]:
    """A crmhub envelope as a store, payment or support system sends it."""
    doc = {"event_id": uid("n-"), "source": source, "type": kind, "occurred_at": now_iso(), "customer_id": user}
    return {**doc, "properties": props}


def native(source: str, user: str, kind: str, props: dict[str, Any]) -> Step:
    body = envelope(source, user, kind, props)
    return lambda _, http: post_native(http, source, body)


def post_native(http: httpx.Client, source: str, body: dict[str, Any]) -> None:
    """As a store or payment system does: send again until the collector acknowledges (a killed API
    refuses connections until the hub has restarted it)."""
    for _ in range(300):
        try:
            if http.post("/v1/events", json=body, auth=(WRITE_KEYS[source], "")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{body['type']} {body['event_id']} was never acknowledged")


def customer_steps(run: str, i: int, rng: random.Random, want: Expected) -> list[Step]:
    """One customer's events in the order they happen; what they must leave behind goes into ``want``."""
    user = f"{run}-u{i}"
    want.orders[user] = {}
    steps: list[Step] = [lambda sdk, _: sdk.identify(user, {"email": f"{user}@example.com", "name": f"C {i}"})]
    if i % 4 == 0:  # bought anonymously first, then logs in: the two profiles merge
        steps += anonymous_orders(run, user, i, rng, want)
    steps += [viewed(user, n) for n in range(3)]
    steps += orders(run, user, i, rng, want)
    steps += complaint(user, i, want) + payment_failures(user, i, want)
    return steps + cart(run, user, i, want)  # last: no later order empties an abandoned cart


def anonymous_orders(run: str, user: str, i: int, rng: random.Random, want: Expected) -> list[Step]:
    anon = f"{run}-a{i}"
    steps = []
    for n in range(1 + i % 2):
        order_id, total = f"{run}-ao{i}-{n}", Decimal(rng.randint(100, 9999)) / 100
        want.orders[user][order_id] = total
        steps.append(order_step(None, anon, order_id, total, uid("m-")))
    return [*steps, lambda sdk, _: sdk.identify(user, {"email": f"{user}@example.com"}, anonymous_id=anon)]


def orders(run: str, user: str, i: int, rng: random.Random, want: Expected) -> list[Step]:
    """1 to 5 orders; a third of them sent twice with the same message id (an SDK retry), some sent again
    under a new message id (a shop re-sending its order): each counts once."""
    steps = []
    for n in range(1 + i % 5):
        order_id, total, message_id = f"{run}-o{i}-{n}", Decimal(rng.randint(100, 99999)) / 100, uid("m-")
        want.orders[user][order_id] = total
        steps.append(order_step(user, None, order_id, total, message_id))
        if rng.random() < 0.33:
            steps.append(order_step(user, None, order_id, total, message_id))
        if rng.random() < 0.15:
            steps.append(order_step(user, None, order_id, total, uid("m-")))
    return steps


def complaint(user: str, i: int, want: Expected) -> list[Step]:
    """Every fifth customer complains on social media; half of them are answered (after the stream)."""
    if i % 5:
        return []
    mention = f"{user}-mention"
    want.alerts["complaint", user] += 1
    if i % 10 == 0:
        want.answered.append((user, mention))
    else:
        want.open_complaints[user] = 1
    props = {"message_id": mention, "platform": "twitter", "handle": f"@{user}", "text": "Still no parcel!"}
    return [native("social", user, "social.mention", {**props, "sentiment": -0.7, "complaint": True})]


def payment_failures(user: str, i: int, want: Expected) -> list[Step]:
    """Every sixth customer's payment fails one to three times for one order: one alert with the count."""
    if i % 6 != 3:
        return []
    count = 1 + i % 3
    want.alerts["payment_failed", user] += 1
    want.failures[user] = count
    props = {"order_id": f"{user}-pf", "amount": "49.90", "currency": "EUR", "reason_code": "declined"}
    return [native("payment", user, "payment.failed", {**props, "payment_id": f"{user}-pay{n}"}) for n in range(count)]


def cart(run: str, user: str, i: int, want: Expected) -> list[Step]:
    """A third of the customers leave an item in the cart (an alert), a third buy it at once (none)."""
    if i % 3 == 1:
        want.alerts["cart_abandoned", user] += 1
        return [abandoned_cart(user)]
    if i % 3 == 2:
        order_id, total = f"{run}-co{i}", Decimal("9.99")
        want.orders[user][order_id] = total
        return [bought_cart(user, order_id, total)]
    return []


def abandoned_cart(user: str) -> Step:
    """The item left in the cart, dated 2 s after it is sent. Each SDK batch's times are corrected by its
    own clock skew (receivedAt - (sentAt - timestamp)); after a kill the stream catches up in a burst, and
    an order sent a few ms before the cart, in a batch that took longer, came out dated after it: the
    order (correctly) emptied the cart and its alert was not due (seen in CI and here, 2 of 100 carts)."""
    return lambda sdk, _: sdk.track(
        user, "Product Added", product(f"{user}-cart"), timestamp=datetime.now(UTC) + timedelta(seconds=2)
    )


def bought_cart(user: str, order_id: str, total: Decimal) -> Step:
    """The cart and its order, the order dated 2 s after the cart. Sent in two SDK batches, each time is
    corrected for clock skew by its own batch (receivedAt - (sentAt - timestamp)): a few ms apart, the order
    could land before the cart, and an order older than the cart leaves the cart be (correctly)."""
    props = {"order_id": order_id, "total": str(total), "currency": "EUR", "products": [product(f"{user}-cart")]}

    def step(sdk: Client, _: httpx.Client) -> None:
        at = datetime.now(UTC)
        sdk.track(user, "Product Added", product(f"{user}-cart"), timestamp=at)
        sdk.track(user, "Order Completed", props, timestamp=at + timedelta(seconds=2))

    return step


def interleave(per_customer: list[list[Step]], rng: random.Random) -> list[Step]:
    """One stream: customers' events mixed at random, each customer's kept in order."""
    queues = [list(reversed(steps)) for steps in per_customer]
    stream = []
    while queues:
        queue = rng.choice(queues)
        stream.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return stream


class Stream(threading.Thread):
    """Sends the steps at ``RATE`` a second: web events into the Segment SDK (which batches and retries on
    its own), the other sources' events posted one by one."""

    def __init__(self, hub: Hub, steps: list[Step], rate: float = RATE) -> None:
        super().__init__(daemon=True)
        self.api, self.steps, self.sent = f"http://127.0.0.1:{hub.settings.api_port}", steps, 0
        self.rate = rate
        self.dropped: list[str] = []  # what the SDK gave up on (must stay empty)
        self.failure: BaseException | None = None

    def run(self) -> None:
        sdk = Client(WRITE_KEYS["web"], host=self.api, on_error=self.sdk_error, max_retries=20, upload_interval=0.2)
        started = time.monotonic()
        try:
            with httpx.Client(base_url=self.api, timeout=5) as http:
                for step in self.steps:
                    step(sdk, http)
                    self.sent += 1
                    time.sleep(max(0.0, started + self.sent / self.rate - time.monotonic()))
            sdk.flush()
        except BaseException as exc:
            self.failure = exc
        finally:
            sdk.shutdown()

    def sdk_error(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        self.dropped += [f"{m.get('messageId')}: {error!r}" for m in batch]


def kill_each_service(hub: Hub, stream: Stream) -> None:
    """SIGKILL each service and the API once, spread over the stream, each after the previous is back."""
    per_kill = len(stream.steps) // (len(KILLED) + 1)
    for n, name in enumerate(KILLED, start=1):
        wait_for(partial(stream_reached, stream, n * per_kill), 120, f"{n} sixths of the stream")
        assert stream.is_alive(), "the stream ended before every service was killed"
        kill_and_wait_for_restart(hub, name)


def stream_reached(stream: Stream, sent: int) -> bool:
    return stream.sent >= sent or not stream.is_alive()


def kill_and_wait_for_restart(hub: Hub, name: str) -> None:
    victim = child(hub, name)
    killed = sigkill(victim)
    wait_for(lambda: victim.proc.pid != killed and victim.proc.poll() is None, 30, f"{name} restarted")


def test_every_service_killed_mid_stream_and_every_result_exact(chaos_hub: Hub) -> None:
    run, rng, want = uid("chaos"), random.Random(16), Expected()
    stream = Stream(chaos_hub, interleave([customer_steps(run, i, rng, want) for i in range(CUSTOMERS)], rng))
    assert len(stream.steps) >= 2500
    stream.start()
    kill_each_service(chaos_hub, stream)
    check_everything(chaos_hub, stream, want, dict.fromkeys(KILLED, 1.0))


def check_everything(
    hub: Hub,
    stream: Stream,
    want: Expected,
    expected_restarts: dict[str, float] | None,
    cart_delay_s: float = CART_DELAY_S,
) -> None:
    """Once the stream is sent: profiles, alerts and segments exact, the restarts as expected (None: not
    checked), every child running. ``cart_delay_s``: the hub's abandonment delay."""
    stream.join(timeout=300)
    every_cart_due = time.monotonic() + cart_delay_s + 5  # by then a bought cart's alert would be out
    assert not stream.is_alive() and stream.failure is None, stream.failure
    assert stream.dropped == []
    with api_client(hub.settings) as api:
        wait_for(lambda: api.get("/health").status_code == 200, 60, "the API")
        answer_complaints(api, want)
        ids = check_profiles(api, want)
        check_alerts(hub, api, want, ids, every_cart_due, whole_topic=expected_restarts is not None)
        check_segments(hub, ids)
        assert expected_restarts is None or restarts(api) == expected_restarts
    assert hub.failure is None
    # a rollover of the broker may be stopping the services right now (the API answers on meanwhile)
    wait_for(lambda: all(c.proc.poll() is None for c in hub.children), 60, "every service running")


BUDGET_MB = 32  # Tansu alone takes ~18 MB: each broker holds ~1,000 of the stream's events
# longer than the stream lags behind through a rollover, which holds the intake while the services drain
# (65 s seen on a loaded machine: a bought cart's order still in the journal when its wait ended, alerted;
# docs/benchmarks.md "the broker-rollover test's extra alert")
BUDGET_CART_DELAY_S = 150.0


class BrokerMemory(threading.Thread):
    """Samples the resident memory of whichever broker the hub runs, every 0.2 s."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(daemon=True)
        self.hub, self.most, self.stop = hub, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            broker = self.hub.broker
            if broker is not None and broker.proc is not None:
                self.most = max(self.most, rss_mb(broker.proc.pid) or 0.0)


def test_a_stream_many_times_the_broker_memory_budget_passes_with_exact_results(tmp_path: Path) -> None:
    """The embedded broker rolled over to a new one several times mid-stream (drained, tables carried):
    every result as exact as in the chaos test, and the broker's memory held near its budget."""
    settings = chaos_settings(
        tmp_path / "data", broker_memory_mb=BUDGET_MB, intake_max_ahead=500, abandonment_delay_s=BUDGET_CART_DELAY_S
    )
    run, rng, want = uid("budget"), random.Random(17), Expected()
    with running_hub(settings, supervise=True) as hub:
        memory = BrokerMemory(hub)
        memory.start()
        stream = Stream(hub, interleave([customer_steps(run, i, rng, want) for i in range(600)], rng), rate=200)
        stream.start()
        check_everything(hub, stream, want, None, BUDGET_CART_DELAY_S)
        memory.stop.set()
        with api_client(hub.settings) as api:
            rolled = restarts(api)
    assert set(rolled) == {"broker"} and rolled["broker"] >= 3, hub.notes
    assert memory.most < BUDGET_MB * 1.5, f"the broker reached {memory.most:.0f} MB"
    assert all("drained: yes" in note for note in hub.notes if "rolled over" in note), hub.notes


def answer_complaints(api: httpx.Client, want: Expected) -> None:
    """Support answers half of the complaints, once each is in the profile (a reply comes after the
    complaint: sent earlier, on another topic, it could overtake it)."""
    for user, mention in want.answered:
        wait_for(partial(open_complaints, api, user), 120, f"the complaint of {user}")
        reply = envelope("support", user, "support.complaint_responded", {"message_id": mention, "agent": "sam"})
        post_native(api, "support", reply)


def open_complaints(api: httpx.Client, user: str) -> list[Any]:
    profile = profile_by(api, user_id=user)
    return list(profile["open_complaints"]) if profile else []


def check_profiles(api: httpx.Client, want: Expected) -> dict[str, str]:
    """Every customer's order count and money exactly as sent, the answered complaints closed; the profile
    id of every user."""
    expected = {
        u: (len(o), sum(o.values(), Decimal(0)), want.open_complaints.get(u, 0)) for u, o in want.orders.items()
    }

    def actual() -> dict[str, tuple[int, Decimal, int]]:
        found = {}
        for user in want.orders:
            p = profile_by(api, user_id=user)
            if p is not None:
                found[user] = (p["order_count"], Decimal(p["total_spent"]), len(p["open_complaints"]))
        return found

    try:
        wait_for(lambda: actual() == expected, 180, "every profile exact")
    except AssertionError:
        got = actual()
        print("wrong:", {u: (got.get(u), w) for u, w in expected.items() if got.get(u) != w})
        raise
    return {user: profile["profile_id"] for user in want.orders if (profile := profile_by(api, user_id=user))}


def check_alerts(
    hub: Hub, api: httpx.Client, want: Expected, ids: dict[str, str], every_cart_due: float, whole_topic: bool
) -> None:
    """Exactly one alert per cause in the alert log and on crm.alerts.v1, none for a bought cart. After the
    broker rolled over (not ``whole_topic``), crm.alerts.v1 holds only the new broker's alerts."""
    users = {pid: user for user, pid in ids.items()}

    def logged() -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()
        for kind in ("complaint", "payment_failed", "cart_abandoned", "complaint_escalated", "browse_abandoned"):
            for alert in api.get("/v1/alerts", params={"kind": kind, "limit": 1000}).json():
                if alert["profile_id"] in users:
                    found[kind, users[alert["profile_id"]]] += 1
        return found

    try:
        wait_for(lambda: logged() == want.alerts, every_cart_due - time.monotonic() + 90, "one alert per cause")
    except AssertionError:
        print("alerts:", logged() - want.alerts, "missing:", want.alerts - logged())
        raise
    time.sleep(max(0.0, every_cart_due - time.monotonic()))
    assert logged() == want.alerts
    counts = {users[a["profile_id"]]: a["details"]["count"] for a in alerts_of(api, "payment_failed", users)}
    assert counts == want.failures
    on_topic = {a["alert_id"] for r in read_to_end(hub, ALERTS) if (a := orjson.loads(r.value))["profile_id"] in users}
    in_log = {a["alert_id"] for kind, _ in want.alerts for a in alerts_of(api, kind, users)}
    assert on_topic == in_log if whole_topic else on_topic <= in_log


def alerts_of(api: httpx.Client, kind: str, users: dict[str, str]) -> list[dict[str, Any]]:
    return [a for a in api.get("/v1/alerts", params={"kind": kind, "limit": 1000}).json() if a["profile_id"] in users]


def check_segments(hub: Hub, ids: dict[str, str]) -> None:
    """Membership in Redis, from both sides (a profile's segments, a segment's members), equal to a fresh
    evaluation of every stored profile (merged-away ones: in none). Read from Redis, not the API: the API
    answers for a merged-away id with the profile it went into."""
    r = redis.Redis.from_url(hub.settings.redis_dsn)

    def differences() -> dict[str, tuple[set[str], set[str]]]:
        fresh = fresh_membership(hub)
        held = {pid: names(r, profile_segments_key(pid)) for pid in fresh}
        members: dict[str, set[str]] = {}
        for name in {s for segments in fresh.values() for s in segments} | {s for h in held.values() for s in h}:
            for pid in names(r, members_key(name)):
                members.setdefault(pid, set()).add(name)
        return {
            pid: (held[pid], fresh[pid])
            for pid in fresh
            if held[pid] != fresh[pid] or members.get(pid, set()) != fresh[pid]
        }

    assert set(ids.values()) <= set(fresh_membership(hub))
    try:
        wait_for(lambda: not differences(), 90, "membership equal to a fresh evaluation")
    except AssertionError:
        print("held vs fresh:", differences())
        raise
    finally:
        r.close()


def names(r: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in r.smembers(key)}  # type: ignore[union-attr]
