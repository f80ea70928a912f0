"""``crmhub tail alerts``: follow ``crm.alerts.v1`` and print each alert as one readable line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from kafka import TopicPartition
from rich.console import Console
from rich.text import Text

from crmhub.core import kafka as kafka_io
from crmhub.core.settings import Settings
from crmhub.core.topics import ALERTS
from crmhub.embedded import shutdown

STYLES = {
    "complaint": "bold red",
    "complaint_escalated": "bold magenta",
    "payment_failed": "bold yellow",
    "invoice_overdue": "yellow",
    "detractor": "red",
    "bad_review": "red",
    "cart_abandoned": "bold cyan",
    "browse_abandoned": "cyan",
}


def format_alert(doc: dict[str, Any]) -> Text:
    """``HH:MM:SS KIND [level n|N times|internal] profile summary  id``."""
    details = doc.get("details") or {}
    tags = [f"level {details['level']}"] if doc["kind"] == "complaint_escalated" else []
    tags += [f"{details['count']} times"] if details.get("count", 1) > 1 else []
    tags += ["internal"] if doc.get("internal") else []
    line = Text(f"{doc['raised_at'][11:19]} ")
    line.append(f"{doc['kind']:<19}", style=STYLES.get(doc["kind"], "bold"))
    line.append(f" {' '.join(f'[{t}]' for t in tags)} " if tags else " ")
    line.append(doc["profile_id"], style="green")
    line.append(f"  {doc['summary']}  ")
    line.append(doc["alert_id"], style="dim")
    return line


def follow_alerts(
    settings: Settings, from_beginning: bool, limit: int | None, show: Callable[[Text], None] | None = None
) -> int:
    """Print alerts as they arrive (``from_beginning``: the whole topic first) until ``limit`` are printed
    or Ctrl-C; how many were printed."""
    show = show or Console(highlight=False, soft_wrap=True).print
    kafka_io.wait_until_reachable(settings, timeout_s=10)
    consumer = kafka_io.consumer(settings, None)
    parts = [TopicPartition(ALERTS, p) for p in sorted(consumer.partitions_for_topic(ALERTS) or {0})]
    consumer.assign(parts)
    (consumer.seek_to_beginning if from_beginning else consumer.seek_to_end)(*parts)
    printed = 0
    try:
        while not shutdown.is_set() and (limit is None or printed < limit):
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    show(format_alert(orjson.loads(record.value)))
                    printed += 1
                    if printed == limit:
                        return printed
    finally:
        consumer.close()
    return printed
