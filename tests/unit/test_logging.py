"""JSON log lines: one object a line with the structured ids a call passes, nothing else of the record."""

from __future__ import annotations

import logging
import sys

import orjson

from crmhub.runtime import JsonFormatter


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("crmhub.test")
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logger.makeRecord("crmhub.test", logging.WARNING, __file__, 1, msg, args, exc_info, extra=extra)


def test_a_line_is_one_json_object_with_the_structured_ids() -> None:
    line = JsonFormatter("ingest").format(
        record("dead letter %s[%d]@%d", "crm.raw.pos.v1", 2, 7, event_id="e-1", topic="crm.raw.pos.v1", other="x")
    )
    doc = orjson.loads(line)
    assert "\n" not in line
    assert doc["service"] == "ingest" and doc["level"] == "WARNING" and doc["logger"] == "crmhub.test"
    assert doc["msg"] == "dead letter crm.raw.pos.v1[2]@7"
    assert doc["event_id"] == "e-1" and doc["topic"] == "crm.raw.pos.v1"
    assert "other" not in doc  # only the known fields: nothing a call passes by accident
    assert doc["ts"].endswith("+00:00")


def test_an_exception_is_kept_in_the_line() -> None:
    doc = orjson.loads(JsonFormatter("api").format(record("failed", exc=True)))
    assert "ValueError: boom" in doc["exc"]
