"""The dispatcher with in-memory state: once per sink, retries, dead letters, rate limits, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from crmhub.core.routing import RateLimit, parse_routes
from schemas.outputs import Alert
from services.notifier.delivery import Claim, Dispatcher, MemoryDeliveryState, make_sinks
from services.notifier.retry import PermanentError, RetryableError, RetryPolicy
from services.notifier.sinks import Sink
from services.notifier.smtp import SmtpSink
from services.notifier.webhook import WebhookHttpSink
from tests.unit.notifier.fixtures import cart, complaint

ROUTES = parse_routes(
    {
        "sinks": {
            "hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s"},
            "mail": {"type": "email", "host": "127.0.0.1", "sender": "crm@x", "to": ["ops@x"]},
        },
        "routes": {"complaint": ["hook", "console"], "cart_abandoned": ["mail"]},
    }
)


class FakeSink:
    """Fails ``failures`` times (retryable unless ``permanent``), then accepts."""

    def __init__(self, name: str, failures: int = 0, permanent: bool = False) -> None:
        self.name = name
        self.failures = failures
        self.permanent = permanent
        self.attempts: list[tuple[str, int]] = []
        self.accepted: list[str] = []

    async def send(self, alert: Alert, attempt: int) -> None:
        self.attempts.append((alert.alert_id, attempt))
        if len(self.attempts) <= self.failures:
            raise (PermanentError if self.permanent else RetryableError)("HTTP 500")
        self.accepted.append(alert.alert_id)


class Harness:
    def __init__(self, limits: Mapping[str, RateLimit] | None = None, **fakes: FakeSink) -> None:
        self.sinks = {name: fakes.get(name, FakeSink(name)) for name in ("topic", "hook", "console", "mail")}
        self.state = MemoryDeliveryState()
        self.dead: list[tuple[str, str, str]] = []
        self.waits: list[float] = []
        self.now = 1_000_000.0

        async def dead_letter(alert: Alert, sink: str, reason: str) -> None:
            self.dead.append((alert.alert_id, sink, reason))

        async def sleep(seconds: float) -> None:
            self.waits.append(seconds)

        sinks: dict[str, Sink] = dict(self.sinks)
        self.dispatcher = Dispatcher(
            routes=ROUTES,
            sinks=sinks,
            state=self.state,
            policy=RetryPolicy(attempts=3, base_s=0.5, cap_s=5.0),
            limits=limits or {},
            dead_letter=dead_letter,
            clock=lambda: self.now,
            sleep=sleep,
            jitter=lambda: 1.0,
        )

    def submit(self, *alerts: Alert) -> list[bool]:
        async def go() -> list[bool]:
            claimed = await self.dispatcher.submit(alerts)
            await self.dispatcher.drain()
            return claimed

        return asyncio.run(go())

    def accepted(self, sink: str) -> list[str]:
        return self.sinks[sink].accepted


def test_each_routed_sink_gets_the_alert_once_and_replays_change_nothing() -> None:
    h = Harness()
    alert = complaint()
    assert h.submit(alert, alert) == [True, False]
    assert h.submit(alert) == [False]  # a replay, a restart: claimed before
    assert {s: h.accepted(s) for s in h.sinks} == {
        "topic": [alert.alert_id],
        "hook": [alert.alert_id],
        "console": [alert.alert_id],
        "mail": [],
    }
    assert h.state.statuses[alert.alert_id] == {"topic": "delivered", "hook": "delivered", "console": "delivered"}
    assert h.state.outbox == set() and h.state.leases == {}


def test_a_receiver_failing_twice_gets_exactly_one_delivery_after_backoff() -> None:
    h = Harness(hook=FakeSink("hook", failures=2))
    alert = complaint()
    h.submit(alert)
    assert h.sinks["hook"].attempts == [(alert.alert_id, 1), (alert.alert_id, 2), (alert.alert_id, 3)]
    assert h.accepted("hook") == [alert.alert_id] and h.dead == []
    assert h.waits == [0.5, 1.0]


def test_after_the_last_try_a_dead_letter_and_the_other_sinks_are_unaffected() -> None:
    h = Harness(hook=FakeSink("hook", failures=99))
    alert = complaint()
    h.submit(alert)
    assert len(h.sinks["hook"].attempts) == 3
    assert h.dead == [(alert.alert_id, "hook", "HTTP 500 (after 3 attempts)")]
    assert h.state.statuses[alert.alert_id] == {"topic": "delivered", "hook": "dead", "console": "delivered"}
    assert h.submit(alert) == [False] and len(h.dead) == 1  # a dead letter is final too


def test_a_permanent_failure_is_dead_at_once() -> None:
    h = Harness(mail=FakeSink("mail", failures=1, permanent=True))
    h.submit(cart())
    assert h.dead == [(cart().alert_id, "mail", "HTTP 500 (not retried)")] and h.waits == []


def test_over_the_rate_limit_an_alert_reaches_the_topic_only_and_is_recorded() -> None:
    h = Harness(limits={"complaint": RateLimit(2, 3600)})
    first, second, third = complaint(1), complaint(2), complaint(3)
    other_customer, other_kind = complaint(4, profile_id="P2"), cart(5)
    h.submit(first, second, third, other_customer, other_kind)
    assert h.accepted("hook") == [first.alert_id, second.alert_id, other_customer.alert_id]
    assert h.accepted("topic") == [a.alert_id for a in (first, second, third, other_customer, other_kind)]
    assert h.state.statuses[third.alert_id] == {"topic": "delivered", "hook": "rate_limited", "console": "rate_limited"}
    assert h.state.counts["rate_limited"] == 2
    h.now += 3601  # the window has slid past the first two
    h.submit(complaint(6))
    assert h.accepted("hook")[-1] == complaint(6).alert_id


def test_a_replayed_alert_does_not_count_towards_the_limit() -> None:
    h = Harness(limits={"*": RateLimit(1, 3600)})
    h.submit(complaint(1), complaint(1), complaint(1))
    assert h.state.counts.get("rate_limited", 0) == 0


def test_recovery_resumes_only_the_sinks_without_a_final_state() -> None:
    h = Harness()
    alert = complaint()

    async def crash_after_the_topic() -> None:  # claimed, one sink done, then the process died
        await h.state.claim([Claim(alert, ("topic", "hook", "console"))], h.now, 60.0)
        await h.state.mark(alert.alert_id, "topic", "delivered")

    asyncio.run(crash_after_the_topic())

    async def recover() -> int:
        restarted = await h.dispatcher.recover()
        await h.dispatcher.drain()
        return restarted

    assert asyncio.run(recover()) == 0  # the lease still holds
    h.now += 61
    assert asyncio.run(recover()) == 1
    assert h.accepted("topic") == [] and h.accepted("hook") == [alert.alert_id]
    assert h.state.statuses[alert.alert_id] == {"topic": "delivered", "hook": "delivered", "console": "delivered"}
    assert h.state.outbox == set() and asyncio.run(recover()) == 0


def test_every_configured_sink_gets_its_implementation() -> None:
    topic = FakeSink("topic")
    sinks = make_sinks(ROUTES, topic, httpx.AsyncClient(), lambda: 0.0, 5.0)
    assert sinks["topic"] is topic and set(sinks) == {"topic", "hook", "mail", "console"}
    assert isinstance(sinks["hook"], WebhookHttpSink) and isinstance(sinks["mail"], SmtpSink)
