"""A faust worker set up by ``create_app`` that loses a record the way faust can: its read position moves
past a record no agent was handed. Run by ``test_faust_watchdog.py``:

    python -m tests.integration.stalling_worker BOOTSTRAP DATA_DIR TOPIC

Each record's offset and value go to ``DATA_DIR/handled.txt``; after the record ``lose the next`` the
consumer seeks two offsets on, so the next record is never fetched unless something fetches it again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import faust

from crmhub.core.faust_app import create_app, run_worker
from crmhub.core.settings import Settings


def build(settings: Settings, topic_name: str) -> faust.App:
    app = create_app("crmhub-stalling-test", settings)
    handled = settings.data_dir / "handled.txt"

    @app.agent(app.topic(topic_name, partitions=1))
    async def handle(stream: Any) -> None:
        async for event in stream.events():
            with handled.open("a") as out:
                out.write(f"{event.message.offset} {event.value.decode()}\n")
            if event.value == b"lose the next":
                await app.consumer.seek(event.message.tp, event.message.offset + 2)

    return app


def main() -> None:
    bootstrap, data_dir, topic_name = sys.argv[1:4]
    settings = Settings(data_dir=Path(data_dir), kafka_url=bootstrap)
    run_worker(lambda s: build(s, topic_name), settings, "stalling-test")


if __name__ == "__main__":
    main()
