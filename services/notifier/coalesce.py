"""Many small writes made at about the same time, carried out together.

Every alert's delivery is a task of its own (``delivery.py``), and each records what happened to it in
Redis: a burst of a hundred journey messages made three hundred round trips of one command or two each.
A :class:`Coalescer` lets each task still await its own write, but the writes made while a batch is being
carried out wait for it and then go out as the next batch, in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self.write = write
        self.waiting: list[tuple[T, asyncio.Future[None]]] = []
        self.task: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> None:
        """Returns once ``item`` was written with its batch; raises what the batch's write raised."""
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if self.task is None:
            self.task = asyncio.create_task(self._run())
        await done

    async def _run(self) -> None:
        try:
            while self.waiting:
                await asyncio.sleep(0)  # the writes of tasks ready to run join this batch
                batch, self.waiting = self.waiting, []
                try:
                    await self.write([item for item, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():  # its task may have been cancelled meanwhile
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self.task = None
