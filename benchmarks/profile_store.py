"""The profile stage alone, on SQLite and on PostgreSQL: fold + publish + commit of pre-made crm.events.v1.

Starts the embedded broker and Redis with ingest only, publishes N synthetic retail events to the raw
topics and waits until ingest has forwarded them all to crm.events.v1. Then, per run and per database,
a profile worker (the service's own ``ProfileWorker``, in this process) folds the whole topic from the
beginning into an empty store, with an empty cache, in batches of ``--batch`` records, exactly as the
service does (fold, publish the changed profiles, write profiles + identifiers + offsets in one SQL
transaction, refresh the Redis cache). The rate is events folded and committed per second, from the
first poll until the last batch is committed. PostgreSQL is a server this script starts
(crmhub.embedded.embedded_postgres: fsync off, like a test server), on the same two cores.

    python benchmarks/profile_store.py --events 50000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import create_engine, text

from crmhub.core import kafka as kafka_io
from crmhub.core.effects import counts_in
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.sink import Sink
from crmhub.core.sql import make_engine
from crmhub.core.stats import read_counts
from crmhub.core.topics import EVENTS, raw_topic
from crmhub.demo.traffic import RetailSimulator
from crmhub.embedded import embedded_postgres
from crmhub.hub import Hub, running_hub
from schemas.profile import Profile
from schemas.readmodels.profiles import ProfileCache
from services.profile.app import ProfileWorker
from services.profile.store import ProfileStore


def publish_and_ingest(hub: Hub, n: int, customers: int, timeout_s: float) -> int:
    """Publish n raw events, wait until ingest has handled them; the number it forwarded."""
    sim = RetailSimulator(seed=11, customers=customers, bad_fraction=0.0)
    producer = kafka_io.producer(hub.settings, linger_ms=20)
    sent = 0
    while sent < n:
        for item in sim.next_batch(datetime.now(UTC), min(1000, n - sent)):
            value = item.payload if isinstance(item.payload, bytes) else orjson.dumps(item.payload)
            producer.send(raw_topic(item.source), key=item.key.encode(), value=value)
            sent += 1
    producer.flush()
    producer.close()
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    deadline = time.monotonic() + timeout_s
    while True:
        counts = read_counts(r)
        handled = sum(v for k, v in counts.items() if k.startswith("ingest.in."))
        if handled >= sent:
            time.sleep(1)  # the last forwarded batch flushed
            final = read_counts(r)  # events forwarded, and the profile.merged events ingest adds
            return int(final.get("ingest.out", 0) + final.get("ingest.merges", 0))
        if time.monotonic() > deadline:
            raise SystemExit(f"ingest did not catch up within {timeout_s:.0f} s: {counts}")
        time.sleep(0.2)


class TimedStore(ProfileStore):
    """The store, timing its SQL: what share of the stage the database takes."""

    sql_s = 0.0

    def load(self, profile_ids: Iterable[str]) -> dict[str, Profile]:
        started = time.perf_counter()
        try:
            return super().load(profile_ids)
        finally:
            self.sql_s += time.perf_counter() - started

    def save(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            super().save(*args, **kwargs)
        finally:
            self.sql_s += time.perf_counter() - started


def fold_topic(hub: Hub, url: str, events: int, batch: int, cache_db: int) -> tuple[float, int, float]:
    """Fold crm.events.v1 from the start into the empty store at ``url``: (seconds, events folded,
    seconds spent in SQL)."""
    store = TimedStore(make_engine(url))
    cache_redis = redis.Redis.from_url(hub.settings.redis_dsn.rsplit("/", 1)[0] + f"/{cache_db}")
    cache_redis.flushdb()
    producer = kafka_io.producer(hub.settings)
    sink = Sink("profile", producer, cache_redis, lambda: datetime.now(UTC))
    worker = ProfileWorker(store, ProfileCache(cache_redis), sink, "bench")
    consumer = KafkaConsumer(
        bootstrap_servers=hub.settings.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=20,
    )
    parts = [TopicPartition(EVENTS, p) for p in range(hub.settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    folded, started = 0, time.monotonic()
    try:
        while folded < events:
            records = [r for recs in consumer.poll(timeout_ms=200, max_records=batch).values() for r in recs]
            if records:
                outcome = worker.handle(records, datetime.now(UTC))
                sink.carry_out(outcome.effects)
                folded += counts_in(outcome.effects).get("profile.events", 0)
            if time.monotonic() - started > 600:
                raise SystemExit(f"folded only {folded} of {events} events in 600 s")
        return time.monotonic() - started, folded, store.sql_s
    finally:
        consumer.close()
        producer.close()
        store.engine.dispose()


@contextmanager
def databases(which: list[str], work: Path) -> Iterator[dict[str, Callable[[], str]]]:
    """Per database kind, a function giving the URL of a new empty database."""
    with ExitStack() as stack:
        makers: dict[str, Callable[[], str]] = {}
        if "sqlite" in which:
            makers["sqlite"] = lambda: f"sqlite:///{work / uuid.uuid4().hex}.sqlite3"
        if "postgresql" in which:
            server = stack.enter_context(embedded_postgres(work / "postgres.log"))
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            stack.callback(admin.dispose)

            def new_pg() -> str:
                name = f"bench_{uuid.uuid4().hex[:10]}"
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                return server.rsplit("/", 1)[0] + f"/{name}"

            makers["postgresql"] = new_pg
        yield makers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--customers", type=int, default=5_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2000, help="records per poll (the service's CRMHUB_BATCH_SIZE)")
    ap.add_argument("--db", action="append", choices=["sqlite", "postgresql"], help="default: both")
    args = ap.parse_args()
    which = args.db or ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory(prefix="crmhub-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work, kafka_port=free_port(), redis_port=free_port(), api_port=free_port())
        with running_hub(settings, services=("ingest",)) as hub, databases(which, work) as makers:
            forwarded = publish_and_ingest(hub, args.events, args.customers, timeout_s=300)
            print(f"{forwarded} events on {EVENTS} ({args.events} raw inputs, {args.customers} customers)")
            rates: dict[str, list[float]] = {name: [] for name in makers}
            for run in range(args.runs):
                for name, new_url in makers.items():  # alternate, so a noisy moment hurts both alike
                    seconds, folded, sql_s = fold_topic(hub, new_url(), forwarded, args.batch, cache_db=2)
                    rates[name].append(folded / seconds)
                    print(
                        f"run {run + 1} {name:10s} {folded} events in {seconds:6.2f} s: {folded / seconds:8.0f} /s "
                        f"(SQL load + save {sql_s:5.2f} s, {100 * sql_s / seconds:3.0f}%)"
                    )
            for name, values in rates.items():
                print(
                    f"{name:10s} median {statistics.median(values):8.0f} events/s folded and committed "
                    f"(runs: {', '.join(f'{v:.0f}' for v in values)})"
                )


if __name__ == "__main__":
    main()
