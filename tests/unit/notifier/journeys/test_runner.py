"""The journey runner on plain dicts for tables, a fake clock and fake outputs: what each input does, due
times through the due topic, restarts from the tables, replays, conversions, dates and erasure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from crmhub.core.topics import ERASURES, EVENTS, PROFILE_CHANGES, SEGMENTS
from schemas.outputs import Alert
from services.notifier.customers import Fresh
from services.notifier.journeys.catalog import parse_journey
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.outputs import Held, Tally
from services.notifier.journeys.runner import (
    CUSTOMERS,
    DATE_PREFIX,
    ENROLLMENTS,
    JOURNEYS_DUE,
    Input,
    JourneyRunner,
)
from tests.unit.notifier.journeys.fixtures import NOW

P1 = "P1"
MAIL = {"name": "mail", "send": "email", "consent": "email", "template": "Hi {{ profile.city }}"}


def profile(pid: str = P1, **traits: Any) -> dict[str, Any]:
    """A stored profile document: consented to e-mail, in Bonn."""
    decision = {"granted": True, "at": NOW.isoformat(), "source": "web"}
    return {
        "profile_id": pid,
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
        "traits": {"city": "Bonn", **traits},
        "consent": {"email": {"marketing": decision}},
    }


def event(kind: str, event_id: str, at: datetime = NOW, pid: str = P1, **properties: Any) -> bytes:
    doc = {"event_id": event_id, "type": kind, "occurred_at": at.isoformat(), "profile_id": pid}
    return orjson.dumps([{**doc, "properties": properties}])  # a batch of one, as ingest forwards them


@dataclass
class Harness:
    journeys: list[Journey]
    now: datetime = NOW
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: {P1: profile()})
    erased: set[str] = field(default_factory=set)
    tables: dict[str, dict[str, Any]] = field(default_factory=lambda: {ENROLLMENTS: {}, CUSTOMERS: {}})
    alerts: list[Alert] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    counts: Tally = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    due_records: list[tuple[int, list[str]]] = field(default_factory=list)
    reads: list[list[str]] = field(default_factory=list)
    recorded: int = 0  # round trips to record counters and histories
    tables_seen: list[dict[str, dict[str, Any]]] = field(default_factory=list)  # as each carry-out found them
    fail_next: bool = False  # the next carry-out fails (after its effects were handed over)

    def __post_init__(self) -> None:
        self.runner = self.start()

    def start(self) -> JourneyRunner:
        """A runner on the tables as they are (a restarted notifier recovers them from the changelog)."""
        runner = JourneyRunner(self.journeys, self.tables, self.read_fresh, self, self.send_due, lambda: self.now)
        runner.rebuild()
        return runner

    async def read_fresh(self, pids: Sequence[str]) -> dict[str, Fresh]:
        self.reads.append(list(pids))
        return {pid: Fresh(self.profiles.get(pid), ("vip",), pid in self.erased) for pid in pids}

    async def carry_out(self, held: Held) -> None:
        self.tables_seen.append({name: dict(table) for name, table in self.tables.items()})
        self.alerts += held.alerts
        self.updates += [orjson.loads(doc) for _, doc in held.updates]
        if held.counts or held.histories:
            self.recorded += 1
        for key, amount in held.counts.items():
            self.counts[key] = self.counts.get(key, 0) + amount
        self.history += [entry for entries in held.histories.values() for entry in entries]
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("Redis away")

    async def send_due(self, partition: int, value: bytes) -> None:
        self.due_records.append((partition, orjson.loads(value)))

    def entry(self, table: str, key: str) -> Any:
        """A table's entry, decoded (the tables hold JSON)."""
        return orjson.loads(self.tables[table][key])

    def feed(self, topic: str, value: bytes, partition: int = 3) -> None:
        asyncio.run(self.runner.handle([Input(topic, partition, orjson.loads(value))]))

    def advance(self, delta: timedelta) -> None:
        """Let time pass; what comes due goes round the due topic, as in the notifier."""
        self.now += delta
        asyncio.run(self.runner.tick())
        records, self.due_records = self.due_records, []
        for partition, keys in records:
            self.feed(JOURNEYS_DUE, orjson.dumps(keys), partition)


def journey(**fields: Any) -> Journey:
    doc: dict[str, Any] = {"id": "j", "status": "active", "trigger": {"event": "Checkout Started"}, "steps": [MAIL]}
    return parse_journey({**doc, **fields})


def test_an_event_enters_once_and_the_message_goes_out_once_however_often_it_is_read() -> None:
    h = Harness([journey(reentry="never")])
    for _ in range(3):
        h.feed(EVENTS, event("Checkout Started", "e1"))
    h.feed(EVENTS, event("Checkout Started", "e2"))  # another occurrence: re-entry never
    (alert,) = h.alerts
    assert (alert.kind, alert.channel, alert.profile_id, alert.summary) == ("journey", "email", P1, "Hi Bonn")
    assert alert.details == {"journey": "j", "step": "mail", "message": "Hi Bonn"}
    assert h.counts[("j", "mail", "entered")] == 1 and h.counts[("j", "mail", "sent")] == 1
    assert [e["what"] for e in h.history] == ["sent", "exited"]


def test_a_record_s_effects_go_out_together_before_its_enrollments_are_written() -> None:
    h = Harness([journey()])
    h.profiles["P2"] = profile("P2")
    h.feed(
        EVENTS,
        orjson.dumps(
            [*orjson.loads(event("Checkout Started", "e1")), *orjson.loads(event("Checkout Started", "e2", pid="P2"))]
        ),
    )
    assert len(h.alerts) == 2 and h.recorded == 1  # both messages in one carry-out
    assert h.tables_seen == [{ENROLLMENTS: {}, CUSTOMERS: {}}]  # nothing written yet when they went out
    assert sorted(h.tables[ENROLLMENTS]) == ["j:P1", "j:P2"]


class TokenScope:
    """A scope whose token is the record's name; the tables note the token each write was made in."""

    def __init__(self) -> None:
        self.token: object = None

    def current(self) -> object:
        return self.token

    @contextmanager
    def restore(self, token: object) -> Iterator[None]:
        before, self.token = self.token, token
        try:
            yield
        finally:
            self.token = before


class ScopedTable(dict[str, Any]):
    def __init__(self, scope: TokenScope) -> None:
        super().__init__()
        self.scope, self.written_in = scope, dict[str, object]()

    def __setitem__(self, key: str, value: Any) -> None:
        self.written_in[key] = self.scope.token
        super().__setitem__(key, value)


def test_records_handled_together_read_once_go_out_once_and_write_each_in_its_own_scope() -> None:
    h = Harness([journey(), journey(id="s", trigger={"segment": "vip", "change": "entered"})])
    h.profiles["P2"] = profile("P2")
    scope = TokenScope()
    tables = {ENROLLMENTS: ScopedTable(scope), CUSTOMERS: ScopedTable(scope)}
    runner = JourneyRunner(h.journeys, tables, h.read_fresh, h, h.send_due, lambda: h.now, scope)
    change = {"segment": "vip", "profile_id": "P2", "change": "entered", "at": NOW.isoformat()}
    records = [
        Input(EVENTS, 1, orjson.loads(event("Checkout Started", "e1")), "first"),
        Input(SEGMENTS, 2, change, "second"),
    ]
    asyncio.run(runner.handle(records))
    assert h.reads == [[P1, "P2"]] and len(h.alerts) == 2 and len(h.tables_seen) == 1  # one read, one carry-out
    assert tables[ENROLLMENTS].written_in == {
        "j:P1": "first",
        next(k for k in tables[ENROLLMENTS] if k != "j:P1"): "second",
    }
    assert tables[CUSTOMERS].written_in == {P1: "first", "P2": "second"}


def test_a_record_whose_effects_fail_writes_nothing_and_is_handled_the_same_again() -> None:
    h = Harness([journey()], fail_next=True)
    with pytest.raises(ConnectionError):
        h.feed(EVENTS, event("Checkout Started", "e1"))
    assert h.tables[ENROLLMENTS] == {} and not h.runner.enrollments.held and not h.runner.held
    h.feed(EVENTS, event("Checkout Started", "e1"))  # the same record again (the guard retries it)
    first, again = h.alerts
    assert first.alert_id == again.alert_id  # the same message id: the outbox sends it once
    assert list(h.tables[ENROLLMENTS]) == ["j:P1"] and h.counts[("j", "mail", "sent")] == 2


def test_an_event_of_another_type_or_failing_the_condition_does_nothing() -> None:
    h = Harness([journey(trigger={"event": "Checkout Started", "where": "plan == 'gold'"})])
    h.feed(EVENTS, event("Product Viewed", "e1"))
    h.feed(EVENTS, event("Checkout Started", "e2", plan="silver"))
    assert not h.alerts and not h.tables[ENROLLMENTS]
    h.feed(EVENTS, event("Checkout Started", "e3", plan="gold"))
    assert len(h.alerts) == 1


def test_a_wait_comes_due_through_the_due_topic_on_the_entrys_partition_and_not_before() -> None:
    h = Harness([journey(steps=[{"name": "pause", "wait": "1h"}, MAIL])])
    h.feed(EVENTS, event("Checkout Started", "e1"), partition=5)
    h.advance(timedelta(minutes=59))
    assert not h.alerts and not h.due_records
    h.now += timedelta(minutes=1)
    asyncio.run(h.runner.tick())
    assert h.due_records == [(5, ["j:P1"])]
    h.advance(timedelta(0))
    assert len(h.alerts) == 1 and h.entry(ENROLLMENTS, "j:P1")["ended"] == "completed"
    h.advance(timedelta(hours=1))
    assert len(h.alerts) == 1


def test_a_restarted_notifier_fires_the_pending_wait_once_from_its_tables() -> None:
    h = Harness([journey(steps=[{"name": "pause", "wait": "1h"}, MAIL])])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    h.runner = h.start()  # the process died; the tables came back from their changelog
    h.feed(EVENTS, event("Checkout Started", "e1"))  # and the input was read again
    h.advance(timedelta(hours=1))
    h.runner = h.start()
    h.advance(timedelta(seconds=11))
    assert len(h.alerts) == 1


def test_exit_criteria_are_checked_before_the_step_after_a_wait() -> None:
    h = Harness([journey(steps=[{"name": "pause", "wait": "1h"}, MAIL], exit={"when": ["city == 'Paris'"]})])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    h.profiles[P1] = profile(city="Paris")
    h.advance(timedelta(hours=1))
    assert not h.alerts and h.counts[("j", "mail", "exited: when: city == 'Paris'")] == 1


def test_the_goal_event_converts_with_its_revenue_and_the_enrollment_stops_listening_after() -> None:
    h = Harness([journey(goal={"event": "Order Completed", "within": "7d"})])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    h.feed(EVENTS, event("Order Completed", "o1", at=NOW + timedelta(days=1), total="59.90"))
    h.feed(EVENTS, event("Order Completed", "o2", at=NOW + timedelta(days=2), total="10.00"))
    assert h.counts[("j", "mail", "converted")] == 1 and h.counts[("j", "mail", "revenue")] == Decimal("59.90")
    assert h.entry(CUSTOMERS, P1)["keys"] == []


def test_an_exit_event_ends_the_enrollment_it_names_and_no_other() -> None:
    complaint = journey(
        trigger={"event": "social.mention", "occurrence": "message_id"},
        reentry="parallel",
        exit={"events": [{"event": "support.complaint_responded", "match": "message_id"}]},
        steps=[{"name": "pause", "wait": "1h"}, {"name": "escalate", "send": "topic", "template": "unanswered"}],
    )
    h = Harness([complaint])
    h.feed(EVENTS, event("social.mention", "e1", message_id="m1"))
    h.feed(EVENTS, event("social.mention", "e2", message_id="m2"))
    h.feed(EVENTS, event("support.complaint_responded", "e3", message_id="m1"))
    h.advance(timedelta(hours=1))
    (alert,) = h.alerts
    assert alert.channel == "topic" and alert.alert_id.startswith("journey")
    assert h.counts[("j", "escalate", "exited: event: support.complaint_responded")] == 1  # the step it was bound for
    assert h.counts[("j", "pause", "waiting")] == 0


def test_a_segment_change_triggers_its_journeys() -> None:
    h = Harness([journey(trigger={"segment": "vip", "change": "entered"})])
    change = {"segment": "vip", "profile_id": P1, "change": "entered", "at": NOW.isoformat(), "profile_version": 3}
    h.feed(SEGMENTS, orjson.dumps({**change, "segment": "lapsed"}))
    assert not h.alerts
    h.feed(SEGMENTS, orjson.dumps(change))
    h.feed(SEGMENTS, orjson.dumps(change))  # read again
    assert len(h.alerts) == 1


def test_a_profile_date_is_scheduled_from_the_profile_change_and_fires_on_the_day() -> None:
    renewal = journey(trigger={"date": "traits.renews_on", "offset": "-7d", "at": "09:00"})
    h = Harness([renewal])
    h.profiles[P1] = profile(renews_on="2026-06-10")
    h.feed(PROFILE_CHANGES, orjson.dumps([h.profiles[P1]]))
    entry = h.entry(ENROLLMENTS, f"{DATE_PREFIX}j:{P1}")
    assert (
        datetime.fromtimestamp(entry["due"], UTC).isoformat().startswith("2026-06-03T09:00")
    )  # the policy's zone: UTC
    h.advance(timedelta(days=1))
    assert not h.alerts
    h.advance(timedelta(days=1, hours=1))  # 3 June, 13:00 UTC
    assert len(h.alerts) == 1
    h.feed(PROFILE_CHANGES, orjson.dumps([h.profiles[P1]]))  # the same date again: not a second occasion
    h.advance(timedelta(days=1))
    assert len(h.alerts) == 1


def test_a_date_long_past_is_not_scheduled_however_often_the_profile_changes() -> None:
    h = Harness([journey(trigger={"date": "traits.renews_on", "offset": "-7d"})])
    h.profiles[P1] = profile(renews_on="2026-01-10")  # 3 January: months before now
    for _ in range(3):
        h.feed(PROFILE_CHANGES, orjson.dumps([h.profiles[P1]]))
    h.advance(timedelta(minutes=1))
    assert f"{DATE_PREFIX}j:{P1}" not in h.tables[ENROLLMENTS] and not h.reads and not h.alerts


def test_an_erasure_takes_every_entry_about_the_customer_out_of_the_tables() -> None:
    waiting = journey(id="w", steps=[{"name": "pause", "wait": "1h"}, MAIL])
    h = Harness([journey(id="done"), waiting])
    h.profiles["P2"] = profile("P2")
    h.feed(EVENTS, event("Checkout Started", "e1"))  # "done" ends at once, "w" waits
    h.feed(EVENTS, event("Checkout Started", "e2", pid="P2"))
    assert {k for k in h.tables[ENROLLMENTS] if "P1" in k} == {"done:P1", "w:P1"} and P1 in h.tables[CUSTOMERS]
    h.feed(ERASURES, orjson.dumps({"profile_id": P1, "erased_at": NOW.isoformat()}))
    assert sorted(h.tables[ENROLLMENTS]) == ["done:P2", "w:P2"] and P1 not in h.tables[CUSTOMERS]
    h.advance(timedelta(hours=1))
    assert [a.profile_id for a in h.alerts] == [P1, "P2", "P2"]  # P1's wait is gone with it


def test_an_erased_customer_gets_nothing_and_a_tag_update_is_an_identify_event() -> None:
    tagging = journey(steps=[{"name": "tag", "update": "tag", "tag": "welcomed"}])
    h = Harness([tagging])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    (update,) = h.updates
    assert (update["type"], update["source"], update["profile_id"]) == ("identify", "crm", P1)
    assert update["traits"]["tags"] == ["welcomed"]
    h.erased.add(P1)
    h.feed(EVENTS, event("Checkout Started", "e2"))
    assert len(h.updates) == 1


def test_the_cap_holds_across_journeys_that_one_event_triggers() -> None:
    capped = {"cap": {"messages": 1, "per": "1d"}}
    h = Harness([journey(id="a", policy=capped), journey(id="b", policy=capped)])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    assert [a.details["journey"] for a in h.alerts] == ["a"]
    assert h.counts[("b", "mail", "skipped: cap")] == 1


def test_the_customers_a_batch_of_events_may_enter_are_read_in_one_round_trip_and_no_others() -> None:
    h = Harness([journey(reentry="never")])
    h.profiles["P2"] = profile("P2")
    batch = [orjson.loads(event("Checkout Started", f"e{pid}", pid=pid))[0] for pid in (P1, "P2", P1)]
    h.feed(EVENTS, orjson.dumps([*batch, orjson.loads(event("Product Viewed", "v1", pid="P3"))[0]]))
    assert h.reads == [[P1, "P2"]] and [a.profile_id for a in h.alerts] == [P1, "P2"]
    h.feed(EVENTS, event("Checkout Started", "e9"))  # entered already, never again: nothing to read
    assert h.reads == [[P1, "P2"]] and len(h.alerts) == 2


def test_an_ended_enrollment_is_forgotten_30_days_after_it_ended_unless_reentry_is_never() -> None:
    h = Harness([journey(id="again", reentry="parallel", trigger={"event": "Checkout Started"}), journey(id="once")])
    h.feed(EVENTS, event("Checkout Started", "e1"))
    assert {k.split(":")[0] for k in h.tables[ENROLLMENTS]} == {"again", "once"}
    h.advance(timedelta(days=29))
    h.feed(EVENTS, event("Checkout Started", "e1"))  # read again within the 30 days: nothing sent again
    assert len(h.alerts) == 2 and len(h.tables[ENROLLMENTS]) == 2
    h.advance(timedelta(days=1, seconds=1))
    assert list(h.tables[ENROLLMENTS]) == ["once:P1"] and not h.reads[1:]  # no customer read to forget


def test_a_profile_change_enters_on_what_a_profile_trigger_finds_once_and_the_wait_rechecks_it() -> None:
    steps = [{"name": "pause", "wait": "1h", "since": "trigger"}, {**MAIL, "details": {"left": "record.cart.value"}}]
    cart = parse_journey(
        {
            "id": "cart",
            "trigger": {"profile": "cart_items > 0", "occurrence": "cart_updated_at"},
            "reentry": "restart",
            "exit": {"left_trigger": True},
            "steps": steps,
        }
    )
    h = Harness([cart])
    items = [{"product_id": "p1", "price": "5.00", "quantity": 1}]
    h.profiles[P1] |= {"cart": {"items": items, "value": "5.00", "updated_at": NOW.isoformat()}}
    other = {**h.profiles[P1], "profile_id": "P2"}
    for _ in range(2):  # the same carts in two changes (a trait changed): one entry each
        h.feed(PROFILE_CHANGES, orjson.dumps([h.profiles[P1], other, profile("P3")]))
    assert h.reads == [] and sorted(h.tables[ENROLLMENTS]) == ["cart:P1", "cart:P2"]  # the changes were the customers
    assert h.counts[("cart", "pause", "entered")] == 2 and h.recorded == 1  # the record's counters: one round trip
    h.advance(timedelta(hours=1))
    (alert,) = h.alerts
    assert alert.summary == "Hi Bonn" and alert.details["left"] == "5.00" and h.reads == [[P1, "P2"]]
    h.now = NOW + timedelta(hours=2)
    h.profiles[P1] |= {"cart": {"items": items, "value": "5.00", "updated_at": h.now.isoformat()}}
    h.feed(PROFILE_CHANGES, orjson.dumps([h.profiles[P1]]))  # a new cart: a new wait, ...
    h.profiles[P1] |= {"cart": {"items": [], "value": "0", "updated_at": h.now.isoformat()}}
    h.advance(timedelta(hours=1))  # ... emptied before it ended: nothing
    assert len(h.alerts) == 1 and h.entry(ENROLLMENTS, "cart:P1")["ended"] == "left_trigger"
