"""The faust corrections (``crmhub.core.faust_fixes``) on the real broker: a record the worker's consumer
moved past without handing it to the agent is fetched again and handled (the watchdog); table recovery
reads a changelog to its true end, whatever end offset the broker reports."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from faust.types import TP

from crmhub.core import kafka as kafka_io
from crmhub.core.faust_fixes import log_ends
from crmhub.embedded import stop_process
from crmhub.hub import Hub
from tests.integration.helpers import uid, wait_for

pytestmark = pytest.mark.integration


def handled(data: Path) -> list[str]:
    path = data / "handled.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_a_record_the_worker_moved_past_unhandled_is_fetched_again(hub: Hub, tmp_path: Path) -> None:
    topic, log = uid("stall-test-"), tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.stalling_worker",
            hub.settings.bootstrap_servers,
            str(tmp_path),
            topic,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    producer = kafka_io.producer(hub.settings)
    try:
        producer.send(topic, b"first", partition=0).get(timeout=30)
        wait_for(lambda: handled(tmp_path) == ["0 first"], 90, what="the worker handling its first record")
        producer.send(topic, b"lose the next", partition=0).get(timeout=30)
        wait_for(lambda: len(handled(tmp_path)) == 2, 30, what="the record before the lost one")
        producer.send(topic, b"victim", partition=0).get(timeout=30)
        # the consumer reads on from offset 3: only the watchdog (10-20 s) brings the victim back
        wait_for(lambda: "2 victim" in handled(tmp_path), 60, what="the lost record, fetched again")
        assert f"TP(topic='{topic}', partition=0) stalled at offset 2 (end 3" in log.read_text()
        assert handled(tmp_path) == ["0 first", "1 lose the next", "2 victim"]
    finally:
        producer.close()
        stop_process(worker)


async def reported_and_true_ends(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TP(topic, 0)
        reported = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return reported, (await log_ends(bootstrap, {tp: reported}))[tp]


def test_a_changelog_is_recovered_to_its_true_end_not_to_the_end_offset_reported(hub: Hub) -> None:
    """Records sent in batches, as faust's producer sends a table's changelog: the end recovery reads to is
    the log's end (Tansu reports the base offset of the last batch + 1, ../shared/BROKER.md)."""
    topic, bootstrap = uid("changelog-test-"), hub.settings.bootstrap_servers
    producer = kafka_io.producer(hub.settings, linger_ms=200)
    try:
        for i in range(3):  # three batches of 40
            futures = [producer.send(topic, f"{i}-{n}".encode(), partition=0) for n in range(40)]
            producer.flush()
            assert all(f.get(timeout=30) for f in futures)
    finally:
        producer.close()
    reported, true = asyncio.run(reported_and_true_ends(bootstrap, topic))
    assert true == 120, f"reported {reported}"
