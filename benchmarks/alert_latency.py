"""Alert latency on the embedded stack (ingest, profile, notifier), optionally under demo traffic:
social complaint -> complaint alert on crm.alerts.v1, and how late a cart abandonment alert is after its
delay ends (DESIGN §8: p99 ≤ 1 s, and ≤ 2 s).

Probes are sent one every ``1 / --probes-per-s`` seconds with their own customers; each probe event's
``occurred_at`` is its send time, and the alert's time is the CreateTime of its record on crm.alerts.v1.

    python benchmarks/alert_latency.py --probes 100 --rate 500 --delay 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.topics import ALERTS, raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.hub import Hub, running_hub


def demo_traffic(hub: Hub, rate: float, stop: threading.Event, sent: list[int] | None = None) -> None:
    """The demo's traffic at ``rate`` events/s until ``stop``; how many went out is added to ``sent[0]``
    as they go (a loaded machine sends fewer than asked: the load the hub met is this count)."""
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    sim, started, count = RetailSimulator(seed=11, customers=5000), time.monotonic(), sent or [0]
    while not stop.is_set() and rate > 0:
        batch = sim.next_batch(datetime.now(UTC), max(1, int(rate / 50)))
        for item in batch:
            value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
            producer.send(raw_topic(item.source), key=item.key.encode(), value=value)
        count[0] += len(batch)
        time.sleep(max(0.0, count[0] / rate - (time.monotonic() - started)))
    producer.close()


def probes(hub: Hub, n: int, per_s: float) -> dict[str, datetime]:
    """n complaints and n carts; what each alert should measure from, by message id / user id."""
    producer = kafka_io.producer(hub.settings, linger_ms=0)
    sent: dict[str, datetime] = {}
    for _ in range(n):
        now, tag = datetime.now(UTC), uuid.uuid4().hex[:12]
        mention = {
            "event_id": f"bench-s-{tag}",
            "source": "social",
            "type": "social.mention",
            "occurred_at": now.isoformat(),
            "email": f"bench-{tag}@example.com",
            "properties": {
                "message_id": f"m-{tag}",
                "platform": "twitter",
                "handle": "@b",
                "text": "late",
                "complaint": True,
            },
        }
        add = {
            "type": "track",
            "event": "Product Added",
            "messageId": f"bench-w-{tag}",
            "userId": f"cart-{tag}",
            "timestamp": now.isoformat(),
            "properties": {"product_id": "p1", "price": "10.00", "quantity": 1},
        }
        producer.send(raw_topic("social"), key=mention["email"].encode(), value=orjson.dumps(mention))
        producer.send(raw_topic("web"), key=add["userId"].encode(), value=orjson.dumps(add))
        producer.flush()
        sent[f"m-{tag}"] = sent[f"cart-{tag}"] = now
        time.sleep(1 / per_s)
    producer.close()
    return sent


def collect(
    hub: Hub,
    want: int,
    timeout_s: float,
    enough: Callable[[list[tuple[dict[str, object], float]]], bool] = lambda found: False,
    topic: str = ALERTS,
) -> list[tuple[Any, float]]:
    """Alerts on crm.alerts.v1 (or the records of ``topic``, decoded) with their record's CreateTime (s),
    until ``want``, ``enough`` of them, or the timeout."""
    consumer = KafkaConsumer(bootstrap_servers=hub.settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    found: list[tuple[Any, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            found += [(orjson.loads(r.value), r.timestamp / 1000) for r in records]
        if enough(found):
            break
    consumer.close()
    return found


def probe_delays(
    alerts: list[tuple[dict[str, object], float]], sent: dict[str, datetime], delay_s: float
) -> tuple[list[float], list[float]]:
    """Seconds from each probe complaint to its alert, and from the end of each probe cart's delay (its
    last event + the delay) to its abandonment alert; alerts of other causes are left out."""
    complaint, cart = [], []
    delay, carts = timedelta(seconds=delay_s), {t for k, t in sent.items() if k.startswith("cart-")}
    for alert, at in alerts:
        details = alert["details"]
        assert isinstance(details, dict)
        if alert["kind"] == "complaint" and details.get("message_id") in sent:
            complaint.append(at - sent[str(details["message_id"])].timestamp())
        elif alert["kind"] == "cart_abandoned":
            since = datetime.fromisoformat(str(details["since"]))
            if since in carts:  # a probe's cart (its only change was the probe's event)
                cart.append(at - (since + delay).timestamp())
    return complaint, cart


def summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return f"{name}: n={len(values)} p50={q[49]:.3f} s p99={q[98]:.3f} s max={max(values):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--probes-per-s", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="Demo events/s alongside the probes (0: none).")
    parser.add_argument("--delay", type=float, default=5.0, help="Cart abandonment delay, seconds.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            kafka_port=free_port(),
            redis_port=free_port(),
            abandonment_delay_s=args.delay,
            browse_abandonment_delay_s=0,
            log_level="WARNING",
        )
        with running_hub(settings, services=("ingest", "profile", "notifier")) as hub:
            time.sleep(15)  # the notifier's group join and table recovery
            stop = threading.Event()
            traffic = threading.Thread(target=demo_traffic, args=(hub, args.rate, stop), daemon=True)
            traffic.start()
            sent = probes(hub, args.probes, args.probes_per_s)
            alerts = collect(hub, 10**9, timeout_s=args.delay + 30)
            stop.set()
    complaint, cart = probe_delays(alerts, sent, args.delay)
    print(f"{args.probes} probes at {args.probes_per_s}/s alongside {args.rate:.0f} demo events/s")
    print(summary("complaint -> alert", complaint))
    print(summary("cart alert after its delay ended", cart))


if __name__ == "__main__":
    main()
