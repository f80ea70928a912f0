"""Two faust-streaming defects (0.15.3, and its master) that lose records, corrected.

**Commits over unsent changelog records.** Before it commits the input offsets, faust flushes its
producer, but ``ProducerBuffer.flush`` returns as soon as 0.1 s pass without a message sent, with
messages still in the buffer: table changes (the notifier's timers) whose input is then committed. A
kill after that loses them for good. :func:`drain` replaces it: the buffer is flushed until it is empty
(while the broker is away, the commit waits for it).

**Records fetched while the streams resume.** When a worker has recovered its tables after a (re)start
or a rebalance, faust resumes the stream partitions while the consumer's flow is already active, seeks
them to their committed offsets, and only then resumes flow control, which *clears every agent's
queue*. A record the fetcher delivered in between (the seek is a broker round trip) is dropped after its
read offset moved past it: the agent never handles it, and once later records are handled their acks
are committed over it (faust takes a one-offset gap at the head of its acks for a compacted topic).

Both were found by reading faust while looking for lost alerts (a restarted notifier that fetched a
profile change and never handled it, issue 16) and neither was caught in the act: a stress run of a
killed and restarted table worker (10-15 kills, 12,000 records) lost nothing with or without them.

:class:`Recovery` does the same steps in the order that cannot drop anything: clear the queues (of what
was fetched before the rebalance) while every stream partition is still paused, seek, and only then
resume the partitions. Nothing is fetched from them before the seek, so nothing is handled twice either.
:class:`TableManager` is faust's own with this recovery; ``create_app`` configures it. Both defects are
tested in ``tests/unit/core/test_faust_fixes.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery
from faust.transport.producer import ProducerBuffer
from faust.types import TP


async def drain(self: ProducerBuffer) -> None:
    """Flush until the buffer is empty (faust's ``flush`` may stop short: see the module's doc)."""
    while self.size:
        await self.flush_atmost(None)


ProducerBuffer.flush = drain  # type: ignore[method-assign]


class Recovery(FaustRecovery):
    async def _resume_streams(self, generation_id: int = 0) -> None:
        """A worker without tables: the streams start once the rebalance is complete."""
        await self.app.on_rebalance_complete.send()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        await self.start_streams(standbys_ready=True)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """The tables are recovered: tell them, then start the streams."""
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        done = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if done:
            await asyncio.wait(done)
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again (generation %r, not %r)", self.app.consumer_generation_id, generation_id
            )
            return
        await self.start_streams(standbys_ready=not self.app.assignor.assigned_standbys())

    async def start_streams(self, standbys_ready: bool) -> None:
        """Clear the agents' queues, seek the paused stream partitions to their committed offsets, resume
        them; then the tables are ready (the standbys too when none are assigned) and the rebalance ends."""
        consumer = self.app.consumer
        assignment = consumer.assignment()
        self.app.flow_control.resume()  # clears the queues: nothing of a stream partition is fetched yet
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        streams: set[TP] = {tp for tp in assignment if not self._is_changelog_tp(tp)}
        consumer.resume_partitions(streams)
        self.completed.set()
        consumer.resume_flow()
        fetcher: Any = self.app._fetcher  # type: ignore[attr-defined]
        await fetcher.maybe_start()
        self.tables.on_actives_ready()
        if standbys_ready:
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class TableManager(FaustTableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery  # type: ignore[return-value]
