"""The faust services' records under the runtime's error rules (crmhub.core.faust_app.Guard), with no
broker: a server not answering is waited for, poison becomes a dead letter and the stream goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import redis.exceptions

from crmhub.core.faust_app import Guard
from crmhub.core.runtime import Backoff
from crmhub.core.testing import Record, TestClock
from crmhub.core.topics import DEADLETTER

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, key: Any, value: bytes, *rest: Any) -> asyncio.Future[None]:
        self.sent.append((topic, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Pipeline:
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def hincrby(self, key: str, name: str, n: int) -> None:
        self.log.append(("hincrby", name))

    def lpush(self, key: str, *items: bytes) -> None:
        self.log.append(("lpush", key))

    def ltrim(self, *args: Any) -> None:
        pass

    async def execute(self) -> None:
        pass


def guard() -> tuple[Guard, Producer, list[tuple[str, Any]]]:
    producer, log = Producer(), []
    redis_log: list[tuple[str, Any]] = log
    fake_redis = SimpleNamespace(pipeline=lambda transaction: Pipeline(redis_log))
    app = SimpleNamespace(producer=producer)
    return Guard(app, "segmenter", fake_redis, TestClock(T0), Backoff(0.0, 0.0)), producer, log


def test_poison_is_a_dead_letter_and_the_next_record_is_handled() -> None:
    g, producer, log = guard()
    handled: list[int] = []

    async def handle(offset: int) -> None:
        if offset == 1:
            orjson.loads(b"not json")
        handled.append(offset)

    async def run() -> None:
        for offset in range(3):
            await g.process(Record("crm.profile-changes.v1", 0, offset, value=b"x"), lambda o=offset: handle(o))

    asyncio.run(run())
    assert handled == [0, 2]
    [(topic, value)] = producer.sent
    letter = orjson.loads(value)
    assert topic == DEADLETTER and letter["offset"] == 1 and letter["reason"].startswith("JSONDecodeError")
    assert ("hincrby", "segmenter.deadletters") in log


def test_a_server_not_answering_is_waited_for_and_the_record_handled_again() -> None:
    g, producer, _ = guard()
    tries: list[int] = []

    async def handle() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise redis.exceptions.ConnectionError("Redis is restarting")

    asyncio.run(g.process(Record("crm.profile-changes.v1", 0, 7, value=b"x"), handle))
    assert len(tries) == 3 and producer.sent == []
