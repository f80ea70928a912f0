"""A faust service's lag counts the records it fetched and has not handled yet
(``crmhub.core.faust_app.record_consumer``): a broker rollover waits for it to be 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from faust.types import TP
from faust.types.tuples import Message

from crmhub.core import metrics
from crmhub.core.faust_app import create_app, record_consumer
from crmhub.core.faust_fixes import unacknowledged
from crmhub.core.settings import Settings

EVENTS = TP("crm.events.v1", 1)


def notifier(tmp_path: Path) -> faust.App:
    """An app whose consumer acknowledges records of ``EVENTS`` (as an agent's topic's are)."""
    app = create_app("crmhub-notifier", Settings(data_dir=tmp_path, kafka_url="127.0.0.1:9"))
    app.topics.add(app.topic(EVENTS.topic))
    asyncio.run(app.topics._update_indices())
    return app


def fetched(app: faust.App, offsets: range) -> list[Message]:
    """Records handed to the streams, as faust's conductor hands them."""
    messages = [Message(EVENTS.topic, EVENTS.partition, o, 0.0, 0, None, b"k", b"v", None) for o in offsets]
    for message in messages:
        app.consumer.track_message(message)
    return messages


def test_records_handed_to_the_streams_are_in_hand_until_acknowledged(tmp_path: Path) -> None:
    app = notifier(tmp_path)
    messages = fetched(app, range(3))
    assert unacknowledged(app.consumer) == {EVENTS: 3}
    assert app.consumer.ack(messages[0])
    assert unacknowledged(app.consumer) == {EVENTS: 2}


def test_a_record_handed_on_again_after_a_seek_is_not_in_hand_once_acknowledged(tmp_path: Path) -> None:
    app = notifier(tmp_path)
    (first,) = fetched(app, range(3, 4))
    assert app.consumer.ack(first)
    (again,) = fetched(app, range(3, 4))  # fetched again (the watchdog sought back) before the commit
    assert not app.consumer.ack(again)  # its offset was acked already: faust keeps it in its set
    assert unacknowledged(app.consumer) == {}


def test_the_lag_counts_the_records_in_hand_beside_those_not_fetched(tmp_path: Path) -> None:
    app = notifier(tmp_path)
    consumer = app.consumer

    async def position(tp: TP) -> int:
        return 10

    consumer.assignment = lambda: {EVENTS}  # type: ignore[method-assign]
    consumer.position = position  # type: ignore[method-assign]
    consumer.highwater = lambda tp: 12  # type: ignore[method-assign]
    messages = fetched(app, range(6, 10))  # fetched up to the position, none handled yet
    lag = metrics.LAG.labels("notifier", EVENTS.topic, str(EVENTS.partition))
    asyncio.run(record_consumer(app, "notifier"))
    assert lag._value.get() == 2 + 4
    for message in messages:
        consumer.ack(message)
    asyncio.run(record_consumer(app, "notifier"))
    assert lag._value.get() == 2
