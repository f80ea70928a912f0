"""The profile service's wiring on the in-memory harness (no broker; SQLite and a throwaway Redis):
events in, profiles published and saved with their offsets, dead letters, and exactly-once replays."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from crmhub.core.effects import Commit
from crmhub.core.kafka import partition_for_key
from crmhub.core.sql import make_engine, upgrade
from crmhub.core.stats import read_counts
from crmhub.core.testing import MemoryProducer, MemorySource, Record, TestClock, harness
from crmhub.core.topics import DEADLETTER, EVENTS, PROFILE_CHANGES, PROFILES
from schemas.events import Event
from schemas.readmodels.catalog import put_products
from schemas.readmodels.profiles import ProfileCache
from services.profile.app import GROUP_ID, SERVICE, ProfileWorker
from services.profile.store import ProfileStore
from tests.unit import factories as f

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> ProfileStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'profiles.sqlite3'}")
    upgrade(engine)
    return ProfileStore(engine)


def stamped(event: Event, pid: str) -> bytes:
    return orjson.dumps([orjson.loads(event.model_copy(update={"profile_id": pid}).model_dump_json())])


class Hub:
    """The profile service on the harness: feed it records, read what it published."""

    def __init__(self, store: ProfileStore, redis_client: Any) -> None:
        self.source, self.producer, self.store = MemorySource(), MemoryProducer(), store
        self.clock = TestClock(T0)
        self.runtime = harness(SERVICE, self.source, self.producer, redis_client, self.handle, self.clock)
        self.worker = ProfileWorker(store, ProfileCache(redis_client), self.runtime.sink, "run-1")
        self.worker.positions = {(EVENTS, 0): None}

    def handle(self, batch: list[Any], now: datetime) -> Any:
        return self.worker.handle(batch, now)

    def feed(self, *values: bytes, first_offset: int = 0) -> None:
        self.source.add(*(Record(EVENTS, 0, first_offset + i, value=v) for i, v in enumerate(values)))
        self.runtime.run_until_drained()

    def published(self, topic: str) -> list[Any]:
        return [orjson.loads(v) for v in self.producer.values(topic)]


def test_orders_fold_into_a_profile_published_and_saved_with_the_offsets(
    store: ProfileStore, redis_client: Any
) -> None:
    hub = Hub(store, redis_client)
    hub.feed(stamped(f.order("o1", "10.00"), "P-1"), stamped(f.order("o2", "5.00"), "P-1"))
    [*_, last] = hub.published(PROFILES)
    assert last["profile_id"] == "P-1" and last["order_count"] == 2
    assert hub.published(PROFILE_CHANGES)
    assert store.offsets(GROUP_ID, EVENTS, "run-1") == {0: 2}
    assert hub.source.commits == [Commit.ASYNC]  # lag only: the offsets that count are in SQL
    assert read_counts(redis_client)["profile.events"] == 2


def test_an_event_without_a_profile_is_a_dead_letter_and_the_batch_goes_on(
    store: ProfileStore, redis_client: Any
) -> None:
    hub = Hub(store, redis_client)
    hub.feed(stamped(f.order("o1", "10.00"), "P-1"), orjson.dumps([{"not": "an event"}]))
    [letter] = hub.published(DEADLETTER)
    assert (letter["offset"], letter["location"], letter["source"]) == (1, "body", "crm")
    assert letter["received_at"].startswith("2026-01-01T12:00:00")
    assert store.load(["P-1"])["P-1"].order_count == 1


def test_a_poison_record_is_dead_lettered_and_the_next_one_folded(
    store: ProfileStore, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception while folding one record (a bug, data the fold cannot take) becomes a dead letter
    with its reason and location; the service does not crash-loop."""
    hub = Hub(store, redis_client)
    real = hub.worker.handle

    def fails_on_o2(batch: list[Any], now: datetime) -> Any:
        if any(b"o2" in (r.value or b"") for r in batch):
            raise ArithmeticError("cannot fold o2")
        return real(batch, now)

    monkeypatch.setattr(hub.worker, "handle", fails_on_o2)
    hub.feed(*(stamped(f.order(o, "1.00"), "P-1") for o in ("o1", "o2", "o3")))
    [letter] = hub.published(DEADLETTER)
    assert letter["reason"] == "ArithmeticError: cannot fold o2" and letter["offset"] == 1
    assert "fails_on_o2" in letter["location"]
    assert store.load(["P-1"])["P-1"].order_count == 2
    assert store.offsets(GROUP_ID, EVENTS, "run-1") == {0: 3}


def test_a_new_instance_goes_on_from_the_offsets_stored_with_the_profiles(
    store: ProfileStore, redis_client: Any
) -> None:
    hub = Hub(store, redis_client)
    batch = [stamped(f.order("o1", "10.00"), "P-1")]
    hub.feed(*batch)
    restarted = Hub(store, redis_client)  # a new instance resumes from the offsets in SQL
    restarted.worker.positions = {(EVENTS, 0): 1}
    restarted.feed(stamped(f.order("o2", "1.00"), "P-1"), first_offset=1)
    assert store.load(["P-1"])["P-1"].order_count == 2


def test_a_product_catalogued_after_its_purchase_dates_the_owned_item_between_batches(
    store: ProfileStore, redis_client: Any
) -> None:
    hub = Hub(store, redis_client)
    lines = {"products": [{"product_id": "kettle", "price": "30.00"}]}
    hub.feed(stamped(f.order("o1", "30.00", extra=lines), "P-1"))
    assert store.load(["P-1"])["P-1"].owned_items[0].warranty_until is None  # not in the catalogue yet
    assert hub.worker.redate_owned({0, 1, 2, 3}) == 0  # the catalogue has not changed: no pass over SQL
    upsert = f.make("product.upserted", source="catalog", customer_id=None, minutes=5,
                    properties={"product_id": "kettle", "warranty_months": 24, "successor_id": "kettle-2"})  # fmt: skip
    pipe = redis_client.pipeline()
    put_products(pipe, [upsert])
    pipe.execute()
    mine = partition_for_key(b"P-1", hub.worker.sink.partitions(EVENTS))
    assert hub.worker.redate_owned({mine + 1}) == 0  # another instance's partition: not its profiles
    hub.worker.catalog_seq = 0
    assert hub.worker.redate_owned({mine}) == 1
    item = store.load(["P-1"])["P-1"].owned_items[0]
    assert (item.warranty_until, item.successor_id) == (datetime(2027, 3, 14, 9, tzinfo=UTC), "kettle-2")
    assert hub.published(PROFILE_CHANGES)[-1][0]["owned_items"][0]["catalogued"] is True
    assert hub.worker.redate_owned({mine}) == 0  # applied: not again
    later = f.make("product.upserted", source="catalog", customer_id=None, minutes=1,
                   properties={"product_id": "kettle", "warranty_months": 12})  # fmt: skip
    pipe = redis_client.pipeline()
    put_products(pipe, [later])  # older than the entry: ignored
    pipe.execute()
    assert hub.worker.catalog.products(["kettle"])["kettle"].warranty_months == 24
