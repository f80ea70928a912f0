"""Identity resolution on the real embedded stack: merges, shared devices, limits, placeholders, and the
identity graph's optimistic concurrency in the real Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import redis
from kafka import KafkaProducer

from crmhub.core.pseudonyms import identity_key, pseudonym
from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from schemas.events import validate_event
from services.ingest.app import IngestWorker, identity_rules
from services.ingest.identity import BatchPlan, IdKey, Merge, Snapshot
from services.ingest.state import MERGE_OUTBOX, MERGED_PREFIX, IngestState, owned_ids, owned_key
from tests.integration.helpers import (
    forwarded,
    id_key,
    identity_rebuild,
    now_iso,
    profile_by,
    publish,
    read_topic,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration
SHARED_DEVICE = "kiosk-shared-1"  # in the hub's shared_ids (conftest)
Doc = dict[str, Any]


def pos_sale(total: str, **identifiers: str) -> Doc:
    return {
        "event_id": uid("pos-"),
        "source": "pos",
        "type": "pos.sale",
        "occurred_at": now_iso(),
        **identifiers,
        "properties": {"store_id": "berlin-1", "till_id": "t1", "receipt_id": uid("r-"), "total": total},
    }


def web_order(total: str, **identifiers: str) -> Doc:
    return {
        "event_id": uid("web-"),
        "source": "web",
        "type": "Order Completed",
        "occurred_at": now_iso(),
        **identifiers,
        "properties": {"order_id": uid("o-"), "total": total},
    }


def stats(api: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = api.get("/v1/stats").raise_for_status().json()["counts"]
    return counts


def test_an_event_linking_two_profiles_merges_them(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    email, card = f"{uid('ann-')}@example.com", uid("L-")
    publish(producer, "web", web_order("100.00", email=email, anonymous_id=uid("anon-")))
    publish(producer, "pos", pos_sale("20.00", loyalty_id=card))
    by_email = wait_for(lambda: profile_by(api, email=email), what="the web profile")
    by_card = wait_for(lambda: profile_by(api, loyalty_id=card), what="the POS profile")
    assert by_email["profile_id"] != by_card["profile_id"]
    merges_before = stats(api).get("ingest.merges", 0)

    linking = pos_sale("5.00", email=email, loyalty_id=card)  # the customer gives the e-mail at the till
    publish(producer, "pos", linking)
    merged = wait_for(
        lambda: (p := profile_by(api, loyalty_id=card)) and p["order_count"] == 3 and p, what="the merged profile"
    )
    survivor, absorbed = by_email["profile_id"], by_card["profile_id"]  # e-mail is stronger than loyalty id
    assert merged["profile_id"] == survivor
    assert (merged["web_orders"], merged["pos_orders"]) == (1, 2)
    assert Decimal(merged["total_spent"]) == Decimal("125.00")
    assert merged["identifiers"]["email"] == [email] and merged["identifiers"]["loyalty_id"] == [card]
    assert profile_by(api, email=email) == merged
    assert api.get(f"/v1/profiles/{absorbed}").json() == merged

    events = forwarded(hub, lambda e: e["profile_id"] == survivor)
    merge = next(e for e in events if e["type"] == "profile.merged")
    assert merge["properties"] == {"survivor_id": survivor, "absorbed_id": absorbed, "linked_by": "loyalty_id"}
    assert (merge["source"], merge["loyalty_id"]) == ("crm", card)
    assert datetime.fromisoformat(merge["occurred_at"]) == datetime.fromisoformat(linking["occurred_at"])
    assert events.index(merge) < [e["event_id"] for e in events].index(linking["event_id"])  # merge first
    assert stats(api)["ingest.merges"] == merges_before + 1

    # the loyalty card alone now names the survivor
    publish(producer, "pos", pos_sale("1.00", loyalty_id=card))
    wait_for(lambda: (p := profile_by(api, email=email)) and p["order_count"] == 4, what="a later sale on the card")


def test_a_shared_device_never_links_customers(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    first, second = uid("c-"), uid("c-")
    device_only = pos_sale("1.00", anonymous_id=SHARED_DEVICE)
    publish(
        producer,
        "pos",
        pos_sale("10.00", customer_id=first, anonymous_id=SHARED_DEVICE),
        pos_sale("20.00", customer_id=second, anonymous_id=SHARED_DEVICE),
        device_only,
    )
    one = wait_for(lambda: profile_by(api, user_id=first), what="the first customer")
    two = wait_for(lambda: profile_by(api, user_id=second), what="the second customer")
    assert one["profile_id"] != two["profile_id"]
    assert "anonymous_id" not in one["identifiers"] and "anonymous_id" not in two["identifiers"]
    assert profile_by(api, anonymous_id=SHARED_DEVICE) is None
    letters = read_topic(hub, DEADLETTER, lambda d: device_only["event_id"] in d["original"], want=1)
    assert letters and letters[0]["reason"] == "the event carries no usable customer identifier"


def test_the_customer_id_limit_keeps_two_customers_on_one_device_apart(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    device, first, second = uid("family-tablet-"), uid("c-"), uid("c-")
    publish(producer, "web", web_order("10.00", customer_id=first, anonymous_id=device))
    one = wait_for(lambda: profile_by(api, user_id=first), what="the first customer")
    limited_before = stats(api).get("identity.limited", 0)
    publish(producer, "web", web_order("20.00", customer_id=second, anonymous_id=device))
    two = wait_for(lambda: profile_by(api, user_id=second), what="the second customer")
    assert two["profile_id"] != one["profile_id"]
    assert "anonymous_id" not in two["identifiers"]  # the device stays with the first customer
    assert profile_by(api, anonymous_id=device)["profile_id"] == one["profile_id"]  # type: ignore[index]
    assert stats(api)["identity.limited"] == limited_before + 1
    assert profile_by(api, user_id=first)["order_count"] == 1  # type: ignore[index]


def test_a_guest_email_does_not_link(hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    first, second = uid("c-"), uid("c-")
    publish(
        producer,
        "web",
        web_order("10.00", customer_id=first, email="guest@shop.com"),
        web_order("20.00", customer_id=second, email="GUEST@shop.com"),
    )
    one = wait_for(lambda: profile_by(api, user_id=first), what="the first guest")
    two = wait_for(lambda: profile_by(api, user_id=second), what="the second guest")
    assert one["profile_id"] != two["profile_id"]
    assert "email" not in one["identifiers"] and "email" not in two["identifiers"]
    assert profile_by(api, email="guest@shop.com") is None


# ---- the identity graph in Redis: two ingest instances at once ----------------------------------------


@pytest.fixture()
def ingests(hub: Hub) -> tuple[IngestState, IngestState]:
    """Two ingest instances' states on the hub's Redis."""
    key = identity_key(hub.settings)
    x, y = (IngestState(redis.Redis.from_url(hub.settings.redis_dsn), 60, key) for _ in range(2))
    return x, y


def test_a_plan_made_on_a_snapshot_another_ingest_changed_is_refused(
    ingests: tuple[IngestState, IngestState],
) -> None:
    x, y = ingests
    key = ("email", f"{uid()}@example.com")
    x_snapshot, x_raw = x.snapshot([key])
    y_snapshot, y_raw = y.snapshot([key])
    assert x_snapshot.links == y_snapshot.links == {}
    assert y.apply([key], y_raw, BatchPlan(links={key: "P-y"}), [])
    assert not x.apply([key], x_raw, BatchPlan(links={key: "P-x"}), [])  # stale: nothing written
    again, raw = x.snapshot([key])
    assert again.links == {key: "P-y"} and again.counts["P-y"]["email"] == 1
    assert x.apply([key], raw, BatchPlan(links={("phone", uid("+49")): "P-y"}), [])


def test_a_change_to_a_profiles_identifier_counts_is_a_conflict_too(ingests: tuple[IngestState, IngestState]) -> None:
    x, y = ingests
    profile, known = uid("P-"), ("customer_id", uid("c-"))
    assert x.apply([known], x.snapshot([known])[1], BatchPlan(links={known: profile}), [])
    _, x_raw = x.snapshot([known])
    other = ("email", f"{uid()}@example.com")  # y gives the profile another e-mail: x's limits may be off now
    assert y.apply([known, other], y.snapshot([known, other])[1], BatchPlan(links={other: profile}), [])
    assert not x.apply([known], x_raw, BatchPlan(links={("email", f"{uid()}@example.com"): profile}), [])


def test_a_merge_repoints_every_identifier_of_the_absorbed_profile(ingests: tuple[IngestState, IngestState]) -> None:
    state, _ = ingests
    survivor, absorbed = uid("S-"), uid("A-")
    email, card, old_device = ("email", f"{uid()}@example.com"), ("loyalty_id", uid("L-")), ("anonymous_id", uid("d-"))
    setup = [email, card, old_device]
    assert state.apply(
        setup, state.snapshot(setup)[1], BatchPlan(links={email: survivor, card: absorbed, old_device: absorbed}), []
    )

    merge_doc = orjson.dumps({"profile_id": survivor})
    keys = [email, card]  # the linking event does not carry the old device id
    snapshot, raw = state.snapshot(keys)
    assert snapshot.counts[absorbed]["anonymous_id"] == 1
    assert state.apply(keys, raw, BatchPlan(merges=[Merge(survivor, absorbed, card)]), [merge_doc])

    after, _ = state.snapshot(setup)
    assert after.links == dict.fromkeys(setup, survivor)
    assert {k: n for k, n in after.counts[survivor].items() if n} == {"email": 1, "loyalty_id": 1, "anonymous_id": 1}
    assert state.redis.get(MERGED_PREFIX + absorbed) == survivor.encode()
    assert merge_doc in state.pending_merges()
    pipe = state.redis.pipeline(transaction=False)
    state.drop_sent_merges(pipe, [merge_doc])
    pipe.execute()
    assert merge_doc not in state.redis.lrange(MERGE_OUTBOX, 0, -1)


class RacedIngestState(IngestState):
    """An ingest state whose first snapshot another ingest makes stale as soon as it is taken."""

    def __init__(self, redis_client: Any, key: bytes, race: Callable[[], None]) -> None:
        super().__init__(redis_client, 60, key)
        self.race: Callable[[], None] | None = race

    def snapshot(self, keys: Sequence[IdKey]) -> tuple[Snapshot, bytes]:
        taken = super().snapshot(keys)
        if self.race:
            self.race()
            self.race = None
        return taken


def test_ingest_resolves_again_when_another_ingest_won_the_race(
    hub: Hub, ingests: tuple[IngestState, IngestState]
) -> None:
    _, other = ingests
    key = ("email", f"{uid()}@example.com")

    def other_links_the_email_first() -> None:
        assert other.apply([key], other.snapshot([key])[1], BatchPlan(links={key: "P-other"}), [])

    state = RacedIngestState(other.redis, other.key, other_links_the_email_first)
    worker = IngestWorker(state, "test", identity_rules(hub.settings))
    device = ("anonymous_id", uid("anon-"))
    event = validate_event(web_order("1.00", email=key[1], anonymous_id=device[1]))
    counts: Counter[str] = Counter()
    _, items, _ = worker._forward([event], counts)
    assert counts["identity.conflicts"] == 1
    [sent] = [orjson.loads(doc) for _, doc in items]
    assert sent["profile_id"] == "P-other"  # not the profile this ingest would have minted
    assert state.snapshot([device])[0].links == {device: "P-other"}  # the device joined the winner's profile


def test_identity_rebuild_restores_links_redis_lost_from_sql(
    hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    """After Redis lost ingest's identity index, `crmhub identity rebuild` restores it from SQL, so the
    customer's next event lands on the same profile instead of starting a second one."""
    email, loyalty = f"{uid('rebuild-')}@example.com", uid("L-")
    publish(producer, "pos", pos_sale("10.00", email=email, loyalty_id=loyalty))
    profile = wait_for(lambda: profile_by(api, email=email), what="the profile folded and stored")
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    lost = [id_key(hub, "email", email), id_key(hub, "loyalty_id", loyalty)]
    lost.append(owned_key(profile["profile_id"]))
    assert r.delete(*lost) == 3  # what a Redis without persistence forgets

    assert "restored " in identity_rebuild(hub)
    assert r.get(lost[0]) == r.get(lost[1]) == profile["profile_id"].encode()
    key = identity_key(hub.settings)
    assert owned_ids(r.hkeys(lost[2])) == {
        ("email", pseudonym(key, "email", email)),
        ("loyalty_id", pseudonym(key, "loyalty_id", loyalty)),
    }

    publish(producer, "pos", pos_sale("5.00", loyalty_id=loyalty))
    after = wait_for(
        lambda: (p := profile_by(api, email=email)) and p["order_count"] == 2 and p, what="the second sale"
    )
    assert after["profile_id"] == profile["profile_id"] and Decimal(after["total_spent"]) == Decimal("15.00")
