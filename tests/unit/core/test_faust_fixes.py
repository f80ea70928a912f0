"""The faust corrections in ``crmhub.core.faust_fixes``: a flush that drains, a resume that drops nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer
from faust.types import TP

from crmhub.core.faust_app import create_app
from crmhub.core.faust_fixes import Recovery, TableManager, drain
from crmhub.core.settings import Settings


class StallingBuffer:
    """A producer buffer whose broker stalls (no message sent within 0.1 s) twice before each send."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    async def flush_atmost(self, max_messages: int | None) -> int:
        self.calls += 1
        if self.calls % 3:
            return 0  # faust's flush stopped here, with messages still unsent
        self.size -= 1
        return 1


def test_the_producer_buffer_is_flushed_until_it_is_empty() -> None:
    assert ProducerBuffer.flush is drain
    buffer = StallingBuffer(size=4)
    asyncio.run(drain(buffer))  # type: ignore[arg-type]
    assert buffer.size == 0 and buffer.calls == 12


class Steps:
    """What the recovery did, in order, to the consumer and flow control."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.assigned = {TP("crm.profile-changes.v1", 0), TP("crmhub-notifier-abandonment-changelog", 0)}

    def assignment(self) -> set[TP]:
        return self.assigned

    async def perform_seek(self) -> None:
        self.done.append("seek")

    def resume_partitions(self, tps: set[TP]) -> None:
        self.done.append("resume " + ",".join(sorted(tp.topic for tp in tps)))

    def resume_flow(self) -> None:
        self.done.append("flow")


def test_stream_partitions_resume_only_after_the_queues_are_cleared_and_seeked(tmp_path: Path) -> None:
    app = create_app("crmhub-notifier", Settings(data_dir=tmp_path, kafka_url="127.0.0.1:9"))
    app.Table("abandonment", default=None)
    assert isinstance(app.tables, TableManager) and isinstance(app.tables.recovery, Recovery)
    steps = Steps()
    app._consumer = steps  # type: ignore[assignment]
    flow: Any = app.flow_control
    flow.resume = lambda: steps.done.append("clear queues")

    async def started() -> None:
        steps.done.append("fetcher")

    app.__dict__["_fetcher"] = SimpleNamespace(maybe_start=started)  # faust's is a cached property
    recovery: Any = app.tables.recovery
    recovery._wait = lambda coro, timeout=None: coro  # the service is not started: await the step itself
    tables: Any = app.tables  # what the tables hear once the streams run
    tables.on_actives_ready = lambda: steps.done.append("actives ready")
    tables.on_standbys_ready = lambda: steps.done.append("standbys ready")
    asyncio.run(recovery.start_streams(standbys_ready=True))
    # a record fetched before the queues are cleared would be dropped unhandled: none can be, the stream
    # partition is resumed last (and the changelog partition is left to the recovery)
    assert steps.done[:5] == ["clear queues", "seek", "resume crm.profile-changes.v1", "flow", "fetcher"]
    assert steps.done[5:] == ["actives ready", "standbys ready"]
