"""The notifier's faust adapter on an in-memory harness: plain dicts for the tables, functions for Redis,
delivery and the due topic, a testing clock. A profile change writes timers on its partition; the tick asks
for due ones to be fired with a record to that partition; the record fires them; failures are retried."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from crmhub.core.settings import Settings
from crmhub.core.topics import PROFILE_CHANGES
from schemas.outputs import Alert
from services.notifier.app import DUE_TOPIC, RESEND_S, RETRY_S, Notifier, rules_from
from services.notifier.machine import Fresh
from tests.unit.notifier.fixtures import CART_AT, HOUR, RULES, complaining, with_cart

DUE = CART_AT + HOUR


class Harness:
    def __init__(self, tables: dict[str, dict[str, Any]] | None = None) -> None:
        self.now = CART_AT
        self.tables = tables if tables is not None else {"abandonment": {}, "complaints": {}}
        self.fresh: dict[str, Fresh] = {}
        self.alerts: list[Alert] = []
        self.sent: list[tuple[int, list[str]]] = []
        self.failures = 0  # how many of the next Redis reads / sends fail
        self.notifier = Notifier(RULES, self.tables, self.read, self.alerts_raised, self.send, lambda: self.now)

    async def read(self, profile_ids: Sequence[str]) -> dict[str, Fresh]:
        self.fail_maybe()
        return {pid: self.fresh.get(pid, Fresh()) for pid in profile_ids}

    async def alerts_raised(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def send(self, partition: int, value: bytes) -> None:
        self.fail_maybe()
        self.sent.append((partition, orjson.loads(value)))

    def fail_maybe(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("away for a moment")

    def changed(self, partition: int, *changes: Any) -> None:
        asyncio.run(self.notifier.handle(PROFILE_CHANGES, partition, orjson.loads(orjson.dumps(changes))))

    def fire(self, partition: int, *profile_ids: str) -> None:
        asyncio.run(self.notifier.handle(DUE_TOPIC, partition, list(profile_ids)))

    def tick(self, at: datetime) -> list[tuple[int, list[str]]]:
        self.now, self.sent = at, []
        asyncio.run(self.notifier.tick())
        return self.sent


def test_a_due_timer_is_fired_through_a_record_to_the_partition_it_was_written_on() -> None:
    h = Harness()
    h.changed(2, with_cart())
    assert h.tables["abandonment"]["cart_abandoned:P"]["partition"] == 2
    assert h.tick(DUE - timedelta(seconds=1)) == []
    assert h.tick(DUE) == [(2, ["P"])]
    assert h.tick(DUE + timedelta(seconds=1)) == []  # asked once
    h.fire(2, "P")
    assert [(a.kind, a.raised_at) for a in h.alerts] == [("cart_abandoned", DUE + timedelta(seconds=1))]
    assert h.tables["abandonment"]["cart_abandoned:P"]["due"] is None  # fired
    h.fire(2, "P")  # the record again (a replay): nothing more
    assert len(h.alerts) == 1 and h.tick(DUE + HOUR) == []  # fired: not asked for again


def test_a_due_record_lost_on_the_way_is_asked_for_again() -> None:
    h = Harness()
    h.changed(1, with_cart())
    assert h.tick(DUE) == [(1, ["P"])]  # the record never reaches the agent
    assert h.tick(DUE + timedelta(seconds=RESEND_S - 1)) == []
    assert h.tick(DUE + timedelta(seconds=RESEND_S)) == [(1, ["P"])]
    h.fire(1, "P")
    assert len(h.alerts) == 1 and h.tick(DUE + 3 * timedelta(seconds=RESEND_S)) == []


def test_profiles_due_together_share_a_record_per_partition() -> None:
    h = Harness()
    h.changed(0, with_cart(), {**complaining("m-1"), "profile_id": "Q"})
    h.changed(1, {**with_cart(), "profile_id": "R"})
    assert h.tick(DUE) == [(0, ["P", "Q"]), (1, ["R"])]


def test_a_firing_that_fails_is_retried_shortly() -> None:
    h = Harness()
    h.changed(0, with_cart())
    assert h.tick(DUE) == [(0, ["P"])]
    h.failures = 1  # Redis does not answer
    h.fire(0, "P")
    assert h.alerts == [] and h.tick(DUE) == []
    assert h.tick(DUE + timedelta(seconds=RETRY_S)) == [(0, ["P"])]


def test_a_due_record_that_could_not_be_sent_is_asked_for_again() -> None:
    h = Harness()
    h.changed(0, with_cart())
    h.failures = 1  # the broker does not answer
    assert h.tick(DUE) == []
    assert h.tick(DUE + timedelta(seconds=RETRY_S)) == [(0, ["P"])]


def test_after_a_recovery_the_due_index_is_rebuilt_from_the_tables() -> None:
    before = Harness()
    before.changed(3, with_cart(), complaining("m-1"))
    restarted = Harness(before.tables)  # a new process: the tables recovered, the index empty
    assert restarted.tick(DUE) == []
    for name in ("abandonment", "complaints"):
        asyncio.run(restarted.notifier.rebuild(name))
    assert restarted.tick(DUE) == [(3, ["P"])]


def test_the_timers_of_an_erased_profile_are_deleted_when_due() -> None:
    h = Harness()
    h.changed(0, {**with_cart(), **complaining("m-1")})
    h.fresh["P"], h.alerts = Fresh(erased=True), []
    h.fire(0, "P")
    assert h.alerts == [] and h.tables == {"abandonment": {}, "complaints": {}}


def test_complaint_and_payment_alerts_are_raised_with_the_change() -> None:
    h = Harness()
    h.changed(0, complaining("m-1"))
    assert [a.kind for a in h.alerts] == ["complaint"] and set(h.tables["complaints"]) == {"P"}


def test_rules_from_settings() -> None:
    settings = Settings(abandonment_delay_s=60, browse_abandonment_delay_s=0, complaint_sla="high:1,normal:2,low:3")
    rules = rules_from(settings)
    assert rules.delays == {"cart_abandoned": timedelta(seconds=60)}  # browse abandonment off
    assert rules.sla.sla_s["high"] == 1 and rules.payment_window == timedelta(seconds=3600)
    assert dict(rules_from(Settings()).delays) == {
        "cart_abandoned": timedelta(hours=1),
        "browse_abandoned": timedelta(hours=2),
    }
