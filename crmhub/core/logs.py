"""Logging, configured once per process: text or one JSON object a line, naming records, never people."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from crmhub.core.instance import instance_name
from crmhub.core.settings import Settings

# structured fields a log call may pass in ``extra``: identifiers of events and records, never personal data
LOG_FIELDS = ("event_id", "alert_id", "profile_id", "topic", "partition", "offset", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, service, instance (crmhub.core.instance), logger, message, and
    the structured fields given."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service, self.instance = service, instance_name(service)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "instance": self.instance,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update((name, record.__dict__[name]) for name in LOG_FIELDS if name in record.__dict__)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def setup_logging(settings: Settings, service: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    for noisy in ("kafka", "aiokafka", "faust", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    for name in ("kafka.cluster", "kafka.net.transport"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ClosingClientNoise) for f in logger.filters):
            logger.addFilter(_ClosingClientNoise())


class _ClosingClientNoise(logging.Filter):
    """kafka-python logs as ERRORs what is in flight when one of its clients closes (the admin and
    consumer clients crmhub closes once the topics exist): a cancelled metadata refresh, and a read on the
    socket it has just closed. Nothing failed; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Metadata refresh: failed Cancelled"):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, AttributeError) and "(closed)" in record.getMessage())
