"""Journeys on the embedded stack (ingest, profile, segmenter, notifier): N profiles in 20 active journeys,
and the trigger -> send latency of one more, zero-wait journey under demo traffic (issue 17: p99 ≤ 1 s).

The 20 journeys are generated: 9 triggered by events of the demo traffic with conditions on their
properties, 6 by segments entered (3 that every loaded profile enters: the tier it is given), 5 by profile
dates (a birthday, a renewal date 30 and 7 days ahead, 90 days after the last order, …). The profiles are
loaded through the profile stage (one ``identify`` each, published to the raw topic), not written to the
store directly: the journeys only learn of a profile from what that stage publishes (the profile change
that schedules its dates, the segment it enters), so a profile written behind its back would be in no
journey. Once the journeys have handled the loaded profiles (every service has read all its inputs and
the entries and messages stop moving for 3 s: the latency phase measures the steady state, not the load's
backlog), demo traffic runs at ``--rate``
events/s for ``--seconds`` with probes of the zero-wait journey (each its own customer) among it: latency
is the CreateTime of the message's record on crm.alerts.v1 minus the probe's send time (and, of it, the time
until the notifier raised the message: the rest is its delivery). Printed: the load rate, what the journeys
hold, messages/s (the journeys' ``sent`` counters), the latency percentiles, the slowest probe per 10 s
of the phase beside the seconds Redis had a child rewriting its append-only file (the slowest probes come
with those), the notifier's CPU (share of one core over the traffic phase) and RSS, and the CPU of every
process per demo event, from the start of the phase until the notifier had read all of it (what the
traffic cost, however far behind it ran).

    python benchmarks/journeys.py                 # 100,000 profiles, 60 s of traffic
    python benchmarks/journeys.py --quick         # 2,000 profiles, 10 s: under 2 minutes
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
import yaml
from alert_latency import collect, demo_traffic, summary  # type: ignore[import-not-found]  # run as a script
from measure import batches, cpu_s, cpu_since, cpu_snapshot, hub_pids, wait_counter  # type: ignore[import-not-found]

from crmhub.core import kafka as kafka_io
from crmhub.core.metrics import rss_mb
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.stats import read_counts
from crmhub.core.topics import EVENTS, raw_topic
from crmhub.hub import Hub, running_hub
from schemas.readmodels.journeys import counts_key

TIERS = ("gold", "silver", "bronze")
WARM_UP = 100
SEGMENTS = [
    *({"name": f"tier_{t}", "condition": f'traits["tier"] == "{t}"'} for t in TIERS),
    {"name": "big_spenders", "condition": "total_spent >= 500"},
    {"name": "repeat_buyers", "condition": "order_count >= 2"},
    {"name": "carts_open", "condition": "cart_value > 0"},
]
EVENT_TRIGGERS = [  # (event, where) of the demo traffic's events
    ("Order Completed", "total >= 100"),
    ("Product Added", "quantity >= 2"),
    ("Checkout Started", None),
    ("Product Viewed", 'currency == "EUR"'),
    ("Email Link Clicked", None),
    ("Push Notification Tapped", None),
    ("Order Refunded", None),
    ("Cart Viewed", None),
    ("consent.granted", 'channel == "email"'),
]
DATE_TRIGGERS = [
    {"date": "birthday", "yearly": True},
    {"date": "traits.renews_on", "offset": "-30d"},
    {"date": "traits.renews_on", "offset": "-7d"},
    {"date": "last_order_at", "offset": "90d"},
    {"date": "created_at", "offset": "365d", "yearly": True},
]
PROBE = {
    "id": "probe",
    "status": "active",
    "trigger": {"event": "Cart Viewed", "where": 'probe == "latency"'},
    "reentry": "parallel",
    "steps": [{"name": "now", "send": "topic", "template": "probe {{ trigger.data.tag }}"}],
}


def steps(i: int) -> list[dict[str, Any]]:
    """A message to the customer, a wait of days, a branch and a second message: what a journey does."""
    send = {"send": "topic", "consent": "email", "without_consent": "internal"}
    return [
        {"name": "hello", **send, "template": f"journey {i} for {{{{ profile.traits.first_name }}}}"},
        {"name": "later", "wait": f"{1 + i % 7}d"},
        {"name": "worth-it", "branch": "total_spent >= 100", "then": "offer", "else": "done"},
        {"name": "offer", **send, "template": "an offer"},
        {"name": "done", "exit": "done"},
    ]


def journeys() -> list[dict[str, Any]]:
    triggers: list[dict[str, Any]] = [{"event": e, **({"where": w} if w else {})} for e, w in EVENT_TRIGGERS]
    triggers += [{"segment": s["name"], "change": "entered"} for s in SEGMENTS]
    triggers += DATE_TRIGGERS
    made = [{"id": f"j{i:02d}", "status": "active", "trigger": t, "steps": steps(i)} for i, t in enumerate(triggers)]
    return [*made, PROBE]


def write_config(data: Path) -> Settings:
    (data / "journeys.yaml").write_text(yaml.safe_dump({"journeys": journeys()}))
    (data / "segments.yaml").write_text(yaml.safe_dump({"segments": SEGMENTS}))
    return Settings(
        data_dir=data,
        kafka_port=free_port(),
        redis_port=free_port(),
        journeys_file=data / "journeys.yaml",
        segments_file=data / "segments.yaml",
        log_level="WARNING",
    )


def load_profiles(hub: Hub, n: int, prefix: str = "bench") -> float:
    """n identifies, each a new customer with a tier, a birthday and a renewal date; seconds to publish."""
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    started, today = time.monotonic(), datetime.now(UTC).date()
    for i in range(n):
        user = f"{prefix}-{i}"
        traits = {
            "email": f"{user}@example.com",
            "first_name": "Ada",
            "tier": TIERS[i % 3],
            "birthday": (date(1980, 1, 1) + timedelta(days=i % 10_000)).isoformat(),
            "renews_on": (today + timedelta(days=10 + i % 300)).isoformat(),
        }
        doc = {"type": "identify", "messageId": uuid.uuid4().hex, "userId": user, "traits": traits}
        doc["timestamp"] = datetime.now(UTC).isoformat()
        producer.send(raw_topic("web"), key=user.encode(), value=orjson.dumps(doc))
    producer.flush()
    producer.close()
    return time.monotonic() - started


def wait_loaded(r: redis.Redis, n: int, started: float, timeout_s: float) -> float | None:
    """When the notifier had the n loaded profiles' changes (None: not within the timeout), with a line of
    progress every 10 s."""
    deadline = started + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if (at := wait_counter(r, "notifier.profiles", WARM_UP + n, min(10.0, left))) is not None:
            return at
        had = read_counts(r).get("notifier.profiles", 0) - WARM_UP
        print(f"  … {had:,} of {n:,} ({had / (time.monotonic() - started):,.0f} profiles/s)", flush=True)
    return None


def probes(hub: Hub, n: int, per_s: float) -> dict[str, datetime]:
    """n probe events (Cart Viewed, probe=latency), each its own customer; send time by tag."""
    producer = kafka_io.producer(hub.settings, linger_ms=0)
    sent: dict[str, datetime] = {}
    for _ in range(n):
        tag, now = uuid.uuid4().hex[:12], datetime.now(UTC)
        doc = {
            "type": "track",
            "event": "Cart Viewed",
            "messageId": f"probe-{tag}",
            "userId": f"probe-{tag}",
            "timestamp": now.isoformat(),
            "properties": {"cart_id": f"c-{tag}", "probe": "latency", "tag": tag},
        }
        producer.send(raw_topic("web"), key=doc["userId"].encode(), value=orjson.dumps(doc))
        producer.flush()
        sent[tag] = now
        time.sleep(1 / per_s)
    producer.close()
    return sent


def journey_totals(r: redis.Redis, counter: str) -> int:
    """The sum of one counter over every step of the 20 journeys (not the probe's)."""
    total = 0
    for j in journeys()[:-1]:
        for field, value in r.hgetall(counts_key(j["id"])).items():
            total += int(value) if field.decode().endswith(f"|{counter}") else 0
    return total


def settle(hub: Hub, r: redis.Redis, timeout_s: float, quiet_s: float = 3.0) -> float:
    """Wait until every service has read all its inputs (the segmenter's entries of the loaded profiles
    come after the notifier has their profile changes) and the journeys' entries and messages have stopped
    moving for ``quiet_s``, so that the latency phase measures the steady state, not the load's backlog;
    seconds waited."""
    started = last_change = time.monotonic()
    seen: tuple[int, ...] = ()
    while time.monotonic() - last_change < quiet_s and time.monotonic() - started < timeout_s:
        now = (journey_totals(r, "entered"), journey_totals(r, "sent"), sum(hub.lags().values()))
        if now != seen or now[-1] > 0:
            seen, last_change = now, time.monotonic()
        time.sleep(0.5)
    return last_change - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="demo events/s beside the probes")
    parser.add_argument("--seconds", type=float, default=60.0, help="of demo traffic and probes")
    parser.add_argument("--probes-per-s", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2,000 profiles and 10 s of traffic")
    args = parser.parse_args()
    if args.quick:
        args.profiles, args.seconds = min(args.profiles, 2_000), min(args.seconds, 10.0)
    with tempfile.TemporaryDirectory() as tmp, running_hub(write_config(Path(tmp))) as hub:
        r = redis.Redis.from_url(hub.settings.redis_dsn)
        notifier = next(c.proc.pid for c in hub.children if c.name == "notifier")
        load_profiles(hub, WARM_UP, "warm-up")  # every service joined its group and handled a first batch
        if wait_counter(r, "notifier.profiles", WARM_UP, 180) is None:
            raise SystemExit(f"warm-up did not complete: {read_counts(r)}")
        print(f"loading {args.profiles:,} profiles through the profile stage …", flush=True)
        started = time.monotonic()
        publish_s = load_profiles(hub, args.profiles)
        loaded = wait_loaded(r, args.profiles, started, 1800)
        took = (loaded or time.monotonic()) - started
        print(
            f"  published in {publish_s:.1f} s; the notifier had every profile change after {took:.1f} s "
            f"({args.profiles / took:,.0f} profiles/s){'' if loaded else ' (TIMED OUT)'}"
        )
        settled = settle(hub, r, 900)
        print(
            f"  journeys: {journey_totals(r, 'entered'):,} entered, {journey_totals(r, 'waiting'):,} waiting, "
            f"{journey_totals(r, 'sent'):,} messages sent; settled {settled:.1f} s after the profiles"
        )
        print(f"phase 2: {args.rate:,.0f} demo events/s for {args.seconds:.0f} s with probes", flush=True)
        stop, sent_before, cpu_before = threading.Event(), journey_totals(r, "sent"), cpu_s(notifier)
        pids = hub_pids(hub)
        cpu_all, batches_before = cpu_snapshot(pids), batches(hub)
        demo_sent = [0]
        traffic = threading.Thread(target=demo_traffic, args=(hub, args.rate, stop, demo_sent), daemon=True)
        lags = LagWatch(hub, stop, r)
        t0, phase_started, persisted = time.monotonic(), time.time(), background_saves(r)
        traffic.start()
        lags.start()
        sent = probes(hub, int(args.seconds * args.probes_per_s), args.probes_per_s)
        stop.set()
        traffic.join()
        lags.join()
        window, persisted = time.monotonic() - t0, background_saves(r) - persisted
        cpu, messages = (cpu_s(notifier) - cpu_before) / window, journey_totals(r, "sent") - sent_before
        rss = rss_mb(notifier)
        caught_up = wait_caught_up(hub, "notifier", 120)
        per_event = {name: used / demo_sent[0] * 1e6 for name, used in cpu_since(pids, cpu_all).items()}
        handled = {name: n - batches_before.get(name, 0) for name, n in batches(hub).items()}
        per_batch = {name: demo_sent[0] / n for name, n in handled.items() if n}  # a service with none: left out
        alerts = collect(
            hub, 10**9, timeout_s=15 if args.quick else 30
        )  # every alert on the topic: the probes' among them
        forwarded = probe_events(hub, sent)
        latency, raised = [], []  # raised: trigger -> the notifier's raising it (the rest is its delivery)
        by_window: dict[int, float] = {}  # the slowest probe sent in each 10 s of the phase
        for alert, at in alerts:
            details = alert.get("details")
            if isinstance(details, dict) and details.get("journey") == "probe":
                since = sent[str(details["message"]).removeprefix("probe ")].timestamp()
                latency.append(at - since)
                window_of = int((since - phase_started) // 10) * 10
                by_window[window_of] = max(by_window.get(window_of, 0.0), at - since)
                raised.append(datetime.fromisoformat(str(alert["raised_at"])).timestamp() - since)
        print(f"  probes: {len(latency)} of {len(sent)} messages on crm.alerts.v1 ({len(alerts):,} alerts read)")
        print(f"  demo traffic: {demo_sent[0]:,} events sent in {window:.0f} s = {demo_sent[0] / window:,.0f}/s")
        print(f"  messages: {messages:,} in {window:.0f} s = {messages / window:,.1f} messages/s from the 20 journeys")
        print("  " + summary("trigger -> send (zero-wait journey)", latency) + f" of {len(sent)} probes")
        slowest = ", ".join(f"{w}s {v:.2f}" for w, v in sorted(by_window.items()))
        print(f"  slowest probe by 10 s of the phase: {slowest}")
        print(
            f"  Redis forks (AOF rewrites, snapshots) during the phase: {persisted}, a child writing at "
            f"{', '.join(f'{s}s' for s in lags.forking) or 'no second sampled'}; Redis used "
            f"{r.info('memory')['used_memory'] / 2**20:,.0f} MB"
        )
        print("  " + summary("of which trigger -> forwarded by ingest", forwarded))
        print("  " + summary("of which trigger -> raised by the notifier", raised))
        print(f"  notifier: CPU {cpu:.0%} of a core over the phase, RSS {rss:.0f} MB")
        print(
            f"  CPU per demo event until the notifier had read all of it ({caught_up:.1f} s after the phase), µs: "
            + ", ".join(f"{name} {us:,.0f}" for name, us in sorted(per_event.items(), key=lambda kv: -kv[1]))
        )
        print("  demo events per batch handled: " + ", ".join(f"{n} {b:,.1f}" for n, b in sorted(per_batch.items())))
        print("  largest consumer lag over the phase (records, all partitions): " + lags.summary())
        print("stopping the hub (it reads the tables' changelogs and saves them for its next start) …", flush=True)


def background_saves(r: redis.Redis) -> int:
    """How many times Redis has forked so far (an AOF rewrite or a snapshot: a child copying the dataset)."""
    return int(r.info("stats")["total_forks"])


def probe_events(hub: Hub, sent: dict[str, datetime]) -> list[float]:
    """Seconds from each probe's send to the CreateTime of the crm.events.v1 record ingest forwarded it in:
    the part of the latency before the notifier."""
    found = []
    for docs, at in collect(hub, 10**9, timeout_s=5, topic=EVENTS):
        for doc in docs:
            tag = str(doc.get("event_id", "")).removeprefix("probe-")
            if tag in sent:
                found.append(at - sent[tag].timestamp())
    return found


def wait_caught_up(hub: Hub, service: str, timeout_s: float) -> float:
    """Seconds until ``service`` had no consumer lag (its metric files, written every second)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if not any(lag for (name, _, _), lag in hub.lags().items() if name == service):
            break
        time.sleep(0.5)
    return time.monotonic() - started


class LagWatch(threading.Thread):
    """Each service's consumer lag per topic, the largest seen (sampled every second): where inputs queue;
    and the seconds of the phase Redis had a child writing its dataset (sampled with them)."""

    def __init__(self, hub: Hub, stop: threading.Event, r: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.hub, self.stop, self.most, self.r = hub, stop, dict[tuple[str, str], int](), r
        self.forking: list[int] = []  # the seconds of the phase Redis had a child writing its dataset

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(1.0):
            info = self.r.info("persistence")
            if info["aof_rewrite_in_progress"] or info["rdb_bgsave_in_progress"]:
                self.forking.append(int(time.monotonic() - started))
            totals: dict[tuple[str, str], int] = {}
            for (service, topic, _), lag in self.hub.lags().items():
                totals[service, topic] = totals.get((service, topic), 0) + lag
            for key, lag in totals.items():
                self.most[key] = max(self.most.get(key, 0), lag)

    def summary(self) -> str:
        top = sorted(self.most.items(), key=lambda kv: -kv[1])[:6]
        return ", ".join(f"{service} {topic} {lag:,}" for (service, topic), lag in top) or "none"


if __name__ == "__main__":
    main()
