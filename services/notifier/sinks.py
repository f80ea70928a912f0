"""Where alerts are delivered. A sink sends one alert per call and raises a
:class:`~services.notifier.retry.DeliveryError` when it could not; retries, dead letters, the once-only
bookkeeping and rate limits are the dispatcher's (:mod:`services.notifier.delivery`).

Here: the two built-in sinks, ``topic`` (``crm.alerts.v1``, the recent-alerts list the API serves, the
counters) and ``console`` (a log line); the HTTP sinks are in :mod:`~services.notifier.webhook`, e-mail in
:mod:`~services.notifier.smtp`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from crmhub.core.routing import CONSOLE, TOPIC
from crmhub.core.stats import RECENT_ALERTS, STATS_KEY, push_recent
from schemas.outputs import Alert
from services.notifier.coalesce import Coalescer

console = logging.getLogger("crmhub.alerts")

Publish = Callable[[Alert, bytes], Awaitable[None]]


class Sink(Protocol):
    name: str

    async def send(self, alert: Alert, attempt: int) -> None:
        """Deliver ``alert`` (try number ``attempt``, from 1); raise DeliveryError when it did not arrive."""


class TopicSink:
    """``crm.alerts.v1`` (``publish`` returns once the broker has the record), then the API's list."""

    name = TOPIC

    def __init__(self, redis: Any, publish: Publish) -> None:
        self.redis = redis
        self.publish = publish
        self._listed = Coalescer[tuple[str, bytes]](self._list)  # a burst's alerts in one round trip

    async def send(self, alert: Alert, attempt: int) -> None:
        doc = alert.model_dump_json().encode()
        await self.publish(alert, doc)
        await self._listed((alert.kind, doc))

    async def _list(self, alerts: Sequence[tuple[str, bytes]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        push_recent(pipe, RECENT_ALERTS, [doc for _, doc in alerts])
        for kind, n in Counter(kind for kind, _ in alerts).items():
            pipe.hincrby(STATS_KEY, f"notifier.alerts.{kind}", n)
        await pipe.execute()


class ConsoleSink:
    """One line in the notifier's log (``<data dir>/logs/notifier.log`` under ``crmhub up``)."""

    name = CONSOLE

    async def send(self, alert: Alert, attempt: int) -> None:
        # the summary may quote the customer (a complaint's text, a handle): logs never carry personal data
        console.info(
            "ALERT %s %s profile=%s",
            alert.kind,
            alert.alert_id,
            alert.profile_id,
            extra={"alert_id": alert.alert_id, "profile_id": alert.profile_id},
        )
