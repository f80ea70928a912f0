"""Shared faust-streaming set-up for the segmenter and the notifier, with the embedded broker's workarounds."""

from __future__ import annotations

from typing import Any

import faust

from crmhub import kafka as kafka_io
from crmhub.embedded import free_port
from crmhub.runtime import setup_logging
from crmhub.settings import Settings


def create_app(app_id: str, settings: Settings, tables: bool = True) -> faust.App:
    """A faust app for ``settings``; ``tables=False`` for an app without tables (no changelog to recover)."""
    datadir = settings.data_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap_servers}",
        "store": "memory://",
        "datadir": str(datadir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "broker_session_timeout": kafka_io.SESSION_TIMEOUT_MS / 1000,
        "web_enabled": False,
        # faust binds its web server even when disabled: keep it on loopback, on a port of its own
        "web_host": "127.0.0.1",
        "web_port": free_port(),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "consumer_auto_offset_reset": "earliest",
    }
    if settings.broker_flavour == "tansu" and tables:
        # Tansu under-reports end offsets, so table recovery would stop early unless every changelog
        # record is its own batch (../shared/BROKER.md)
        options["producer_max_batch_size"] = 1
    return faust.App(app_id, **options)


def run_worker(app: faust.App, settings: Settings, service: str) -> None:
    setup_logging(settings, service)
    kafka_io.wait_until_reachable(settings)
    kafka_io.ensure_topics(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    setup_logging(settings, service)  # faust's Worker installs its own handlers: put ours back
    worker.execute_from_commandline()
