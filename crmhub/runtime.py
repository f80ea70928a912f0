"""What every kafka-python service shares: logging, graceful shutdown, the batch poll loop."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

from crmhub.settings import Settings

log = logging.getLogger("crmhub")


def setup_logging(settings: Settings, service: str) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    for noisy in ("kafka", "aiokafka", "faust", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


class Stopper:
    """Turns SIGTERM and SIGINT into a flag the loop checks between batches (graceful shutdown)."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True


def batches(consumer: KafkaConsumer, stopper: Stopper, max_records: int) -> Iterator[list[ConsumerRecord]]:
    """Yield non-empty batches of records, in partition order, until stopped."""
    while not stopper.stopped:
        polled = consumer.poll(timeout_ms=100, max_records=max_records)
        records = [record for part in polled.values() for record in part]
        if records:
            yield records
