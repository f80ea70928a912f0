"""JSON log lines: one object a line with the structured ids a call passes, nothing else of the record."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from crmhub.core.instance import INSTANCE_ENV
from crmhub.core.logs import JsonFormatter, setup_logging
from crmhub.core.settings import Settings


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


def test_what_kafka_python_logs_while_closing_a_client_is_dropped_and_nothing_else(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(Settings(), "test")
    closed_read: BaseException
    try:
        None.recv(4096)  # type: ignore[attr-defined]
    except AttributeError as exc:
        closed_read = exc
    transport = logging.getLogger("kafka.net.transport")
    logging.getLogger("kafka.cluster").error("Metadata refresh: failed Cancelled")
    transport.error("<KafkaTCPTransport [none] (closed)>: Error receiving network data", exc_info=closed_read)
    transport.error("<KafkaTCPTransport [node 1] (connected)>: Error receiving network data", exc_info=closed_read)
    logging.getLogger("kafka.cluster").error("Metadata refresh: failed NodeNotReady")
    out = capsys.readouterr().out
    assert "Cancelled" not in out and "(closed)" not in out
    assert "(connected)" in out and "NodeNotReady" in out


def test_a_json_line_names_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSTANCE_ENV, "profile-2")
    doc = orjson.loads(JsonFormatter("profile").format(record("folded")))
    assert (doc["service"], doc["instance"]) == ("profile", "profile-2")
