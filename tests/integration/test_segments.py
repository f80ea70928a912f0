"""Segments on a hub of their own (the segmenter is restarted here): definitions through the API, backfill,
deletes, the clock flip with no new event, and membership after a restart equal to a fresh evaluation."""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from crmhub.core import kafka as kafka_io
from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.core.topics import DEADLETTER, PROFILE_CHANGES, SEGMENTS
from crmhub.hub import SERVICES, Hub, running_hub
from tests.integration.helpers import (
    api_client,
    crmhub,
    fresh_membership,
    profile_by,
    publish,
    read_to_end,
    read_topic,
    segment_track,
    uid,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("segments"),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        write_keys="test-web-key:web",
        api_token="test-token",
        segment_tick_s=0.5,
        segment_history_s=1.0,
    )
    with running_hub(settings, services=("ingest", "profile", "segmenter", "api")) as hub:
        yield hub


@pytest.fixture(scope="module")
def api(seg_hub: Hub) -> Iterator[httpx.Client]:
    with api_client(seg_hub.settings) as client:
        yield client


@pytest.fixture(scope="module")
def producer(seg_hub: Hub) -> Iterator[KafkaProducer]:
    prod = kafka_io.producer(seg_hub.settings)
    yield prod
    prod.close()


def order(user: str, total: str, at: datetime | None = None) -> dict[str, Any]:
    msg = segment_track("Order Completed", {"order_id": uid("o-"), "total": total}, uid("a-"), user)
    if at is not None:
        msg["timestamp"] = at.isoformat()
    return msg


def customers_with_orders(api: httpx.Client, producer: KafkaProducer, totals: list[str]) -> list[str]:
    """One customer per total, each with one order of it; their profile ids once folded."""
    users = [uid("c-") for _ in totals]
    publish(producer, "web", *(order(user, total) for user, total in zip(users, totals, strict=True)))
    return [wait_for(lambda u=u: (p := profile_by(api, user_id=u)) and p["profile_id"], what=u) for u in users]


def members(api: httpx.Client, name: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while cursor != 0:
        page = api.get(f"/v1/segments/{name}/members", params={"cursor": cursor or 0, "limit": 1000}).json()
        found.update(page["members"])
        cursor = page["next_cursor"]
    return found


def changes_of(hub: Hub, pids: set[str]) -> list[dict[str, Any]]:
    docs = (orjson.loads(r.value) for r in read_to_end(hub, SEGMENTS))
    return [doc for doc in docs if doc["profile_id"] in pids]


def test_definitions_through_the_api_are_validated(api: httpx.Client) -> None:
    bad = api.post("/v1/segments", json={"name": "broken", "condition": "total_spent >="})
    assert bad.status_code == 400 and "bad condition 'total_spent >='" in bad.json()["detail"]
    unknown = api.post("/v1/segments", json={"name": "typo", "condition": "total_spend > 5"})
    assert unknown.status_code == 400
    assert "unknown field 'total_spend'" in unknown.json()["detail"] and "'total_spent'" in unknown.json()["detail"]
    mismatch = api.put("/v1/segments/typed", json={"condition": 'order_count > "many"'})
    assert mismatch.status_code == 400 and "typed" in mismatch.json()["detail"]
    assert api.post("/v1/segments", json={"name": "Bad Name", "condition": "order_count > 0"}).status_code == 400
    assert api.get("/v1/segments/broken").status_code == 404  # nothing was saved

    made = api.post("/v1/segments", json={"name": "crud_test", "condition": "order_count > 99", "description": "d"})
    assert made.status_code == 201, made.text
    assert made.json()["source"] == "api" and made.json()["fields"] == ["order_count"]
    assert api.post("/v1/segments", json={"name": "crud_test", "condition": "order_count > 1"}).status_code == 409
    assert api.put("/v1/segments/crud_test", json={"condition": "order_count > 98"}).json()["condition"] == (
        "order_count > 98"
    )
    assert api.put("/v1/segments/big_spenders", json={"condition": "order_count > 1"}).status_code == 409
    assert api.delete("/v1/segments/big_spenders").status_code == 409
    listed = {s["name"]: s for s in api.get("/v1/segments").json()}
    assert listed["crud_test"]["condition"] == "order_count > 98" and listed["big_spenders"]["source"] == "file"
    assert listed["lapsed_90_days"]["clock_dependent"] is True
    assert api.delete("/v1/segments/crud_test").status_code == 204
    assert api.delete("/v1/segments/crud_test").status_code == 404


def test_a_new_segment_is_backfilled_a_changed_one_reevaluated_a_deleted_one_exits(
    seg_hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    low, mid, high = customers_with_orders(api, producer, ["100.00", "200.00", "300.00"])
    name = uid("spent_over_150_")
    made = api.post("/v1/segments", json={"name": name, "condition": "total_spent > 150"})
    assert made.status_code == 201, made.text
    wait_for(lambda: {mid, high} <= members(api, name), what="the backfill of the new segment")
    assert low not in members(api, name)
    progress = wait_for(lambda: (doc := api.get(f"/v1/segments/{name}").json()["backfill"]) and doc["finished"] and doc,
                        what="backfill progress finished")  # fmt: skip
    assert progress["done"] >= 3
    assert name in api.get(f"/v1/profiles/{high}/segments").json()["segments"]

    assert api.put(f"/v1/segments/{name}", json={"condition": "total_spent > 250"}).status_code == 200
    wait_for(lambda: mid not in members(api, name), what="the changed segment re-evaluated")
    assert members(api, name) >= {high}

    assert api.delete(f"/v1/segments/{name}").status_code == 204
    wait_for(lambda: name not in api.get(f"/v1/profiles/{high}/segments").json()["segments"], what="exit on delete")
    events = wait_for(
        lambda: (
            (found := [e for e in changes_of(seg_hub, {low, mid, high}) if e["segment"] == name])
            and Counter(e["change"] for e in found) == Counter(entered=2, exited=2)
            and found
        ),
        what="two entries and two exits",
    )
    assert {(e["profile_id"], e["change"]) for e in events} == {
        (mid, "entered"), (high, "entered"), (mid, "exited"), (high, "exited")
    }  # fmt: skip


def test_lapsed_90_days_fires_with_no_new_event(seg_hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    user = uid("lapsing-")
    ordered_at = datetime.now(UTC) - timedelta(days=90) + timedelta(seconds=20)
    publish(producer, "web", order(user, "20.00", at=ordered_at))
    pid = wait_for(lambda: (p := profile_by(api, user_id=user)) and p["profile_id"], what="the order folded")
    first = wait_for(
        lambda: (names := api.get(f"/v1/profiles/{pid}/segments").json()["segments"]) and names,
        timeout_s=15,
        what="the order evaluated",
    )
    assert "active_90_days" in first and "lapsed_90_days" not in first  # the 90 days are not over yet
    assert datetime.now(UTC) < ordered_at + timedelta(days=90), "the machine was too slow for this test"
    wait_for(
        lambda: "lapsed_90_days" in api.get(f"/v1/profiles/{pid}/segments").json()["segments"],
        timeout_s=45,
        what="lapsed_90_days entered on the clock",
    )
    assert "active_90_days" not in api.get(f"/v1/profiles/{pid}/segments").json()["segments"]
    assert profile_by(api, user_id=user)["version"] == 1  # type: ignore[index]  # no event since the order
    changes = {(e["segment"], e["change"]) for e in changes_of(seg_hub, {pid})}
    assert {("active_90_days", "entered"), ("active_90_days", "exited"), ("lapsed_90_days", "entered")} <= changes


def test_the_command_line_lists_shows_and_tests(seg_hub: Hub, api: httpx.Client, producer: KafkaProducer) -> None:
    [pid] = customers_with_orders(api, producer, ["640.00"])
    wait_for(lambda: pid in members(api, "big_spenders"), what="a big spender")
    listed = crmhub(seg_hub, "segments", "list")
    assert listed.returncode == 0, listed.stderr
    assert "big_spenders" in listed.stdout and "lapsed_90_days" in listed.stdout
    shown = crmhub(seg_hub, "segments", "show", "lapsed_90_days")
    assert shown.returncode == 0, shown.stderr
    assert "last_order_at" in shown.stdout and "days_since(last_order_at) >= 90" in shown.stdout
    tried = crmhub(
        seg_hub, "segments", "test", "total_spent > 600 and days_since(last_order_at) < 30", "--profile", pid
    )
    assert tried.returncode == 0, tried.stderr
    assert "matches" in tried.stdout and "True" in tried.stdout and "640" in tried.stdout
    assert "False" in crmhub(seg_hub, "segments", "test", "total_spent > 700", "--profile", pid).stdout
    typo = crmhub(seg_hub, "segments", "test", "total_spend > 1", "--profile", pid)
    assert typo.returncode == 2 and "unknown field 'total_spend'" in typo.stderr and "Traceback" not in typo.stderr
    missing = crmhub(seg_hub, "segments", "show", "nope")
    assert missing.returncode == 2 and "no segment 'nope'" in missing.stderr


def test_a_condition_is_tried_over_http_before_saving(api: httpx.Client, producer: KafkaProducer) -> None:
    [pid] = customers_with_orders(api, producer, ["75.00"])
    tried = api.post("/v1/segments/test", json={"condition": "total_spent >= 75", "profile_id": pid}).json()
    assert (tried["matches"], tried["fields"]) == (True, {"total_spent": "75.00"})
    assert api.post("/v1/segments/test", json={"condition": "x >", "profile_id": pid}).status_code == 400
    assert api.post("/v1/segments/test", json={"condition": "order_count > 0", "profile_id": "no"}).status_code == 404


def test_size_history_is_sampled(seg_hub: Hub, api: httpx.Client) -> None:
    history = wait_for(lambda: len(h := api.get("/v1/segments/big_spenders/history").json()["sizes"]) >= 2 and h,
                       what="two size samples")  # fmt: skip
    assert history[0]["at"] > history[1]["at"]  # newest first
    assert api.get("/v1/segments/nope/history").status_code == 404


def restart_segmenter(hub: Hub, sig: signal.Signals, meanwhile: Callable[[], None]) -> None:
    [segmenter] = [c for c in hub.children if c.name == "segmenter"]
    segmenter.proc.send_signal(sig)
    meanwhile()
    segmenter.proc.wait(timeout=30)
    hub.children.remove(segmenter)
    hub.spawn("segmenter", SERVICES["segmenter"])


def wait_settled(hub: Hub, api: httpx.Client, at_least: int) -> dict[str, set[str]]:
    """Wait until every stored profile's segments in Redis are those a fresh evaluation gives; them."""

    def settled() -> dict[str, set[str]] | None:
        fresh = fresh_membership(hub)
        held = {pid: set(api.get(f"/v1/profiles/{pid}/segments").json()["segments"]) for pid in fresh}
        return fresh if len(fresh) >= at_least and held == fresh else None

    return wait_for(settled, timeout_s=90, what="membership equal to a fresh evaluation of every profile")


def change_runs(hub: Hub) -> dict[tuple[str, str], list[str]]:
    """Per (profile, segment), the changes on crm.segments.v1 in order."""
    runs: dict[tuple[str, str], list[str]] = {}
    for record in read_to_end(hub, SEGMENTS):
        change = orjson.loads(record.value)
        runs.setdefault((change["profile_id"], change["segment"]), []).append(change["change"])
    return runs


def many_orders(users: list[str]) -> list[dict[str, Any]]:
    return [order(u, f"{(i * 37) % 900 + 1}.00") for i, u in enumerate(users)]


def test_after_a_restart_membership_equals_a_fresh_evaluation_with_no_duplicate_entries(
    seg_hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    users = [uid("r-") for _ in range(150)]
    publish(producer, "web", *many_orders(users[:75]))

    def meanwhile() -> None:
        publish(producer, "web", *many_orders(users[75:]))
        publish(producer, "web", *(order(u, "250.00") for u in users[::3]))  # second orders: repeat buyers, more

    restart_segmenter(seg_hub, signal.SIGTERM, meanwhile)
    wait_settled(seg_hub, api, len(users))
    for key, seq in change_runs(seg_hub).items():
        assert seq == (["entered", "exited"] * len(seq))[: len(seq)], f"{key}: {seq}"


def test_after_a_crash_membership_equals_a_fresh_evaluation_and_no_change_is_lost(
    seg_hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    users = [uid("k-") for _ in range(150)]
    publish(producer, "web", *many_orders(users[:100]))
    time.sleep(1.0)  # let the segmenter be in the middle of it
    restart_segmenter(seg_hub, signal.SIGKILL, lambda: publish(producer, "web", *many_orders(users[100:])))
    fresh = wait_settled(seg_hub, api, len(users))
    runs = change_runs(seg_hub)
    repeated = 0
    for (pid, segment), seq in runs.items():
        # at least once: a change may be published twice around the crash, but the last one tells the truth
        assert (seq[-1] == "entered") == (segment in fresh.get(pid, set())), f"{pid} {segment}: {seq}"
        repeated += sum(a == b for a, b in itertools.pairwise(seq))
    for pid, segments in fresh.items():
        assert all(runs.get((pid, s), [None])[-1] == "entered" for s in segments), f"{pid}: an entry was lost"
    print(f"changes published twice around the SIGKILL: {repeated}")


def test_a_poison_record_is_a_dead_letter_and_the_segmenter_goes_on(
    seg_hub: Hub, api: httpx.Client, producer: KafkaProducer
) -> None:
    """Poison on the real stack: a record the segmenter cannot read becomes a dead letter with its reason
    and location (crmhub.core.faust_app.Guard), and the same worker goes on evaluating."""
    marker = uid("poison-")
    producer.send(PROFILE_CHANGES, key=b"P-poison", value=f"not json {marker}".encode()).get(timeout=10)
    [letter] = read_topic(seg_hub, DEADLETTER, lambda d: marker in d["original"], want=1)
    assert letter["topic"] == PROFILE_CHANGES and letter["source"] == "crm"
    assert letter["reason"].startswith("ValidationError") and "Invalid JSON" in letter["reason"] and letter["location"]
    [pid] = customers_with_orders(api, producer, ["650.00"])
    wait_for(lambda: pid in members(api, "big_spenders"), what="a big spender after the poison record")
