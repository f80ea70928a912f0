"""Alert delivery, exactly once per alert id: Redis ``SET NX`` claims the id, then the alert goes to
``crm.alerts.v1``, the recent-alerts list the API serves, and the console (the notifier's log)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from crmhub.stats import RECENT_ALERTS, STATS_KEY, push_recent
from schemas.outputs import Alert

console = logging.getLogger("crmhub.alerts")
DELIVERED_PREFIX = "crmhub:alert:"
DELIVERED_TTL_S = 90 * 86400

Publish = Callable[[Alert, bytes], Awaitable[None]]


class AlertSink:
    def __init__(self, redis: Any, publish: Publish) -> None:
        self.redis = redis
        self.publish = publish

    async def deliver(self, alert: Alert) -> bool:
        """Deliver unless an alert with this id was delivered before; True when delivered now."""
        if not await self.redis.set(DELIVERED_PREFIX + alert.alert_id, b"1", nx=True, ex=DELIVERED_TTL_S):
            return False
        doc = alert.model_dump_json().encode()
        await self.publish(alert, doc)
        pipe = self.redis.pipeline(transaction=False)
        push_recent(pipe, RECENT_ALERTS, [doc])
        pipe.hincrby(STATS_KEY, f"notifier.alerts.{alert.kind}", 1)
        await pipe.execute()
        console.info("ALERT %s %s profile=%s: %s", alert.kind, alert.alert_id, alert.profile_id, alert.summary)
        return True
