"""Writes made at about the same time go out together; each caller still learns how its own went."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.notifier.coalesce import Coalescer


def test_writes_made_together_go_out_in_one_batch_and_later_ones_in_the_next() -> None:
    batches: list[list[int]] = []

    async def write(items: Sequence[int]) -> None:
        batches.append(list(items))
        await asyncio.sleep(0.01)  # a round trip: writes made meanwhile wait for the next batch

    async def go() -> None:
        coalesce = Coalescer[int](write)
        first = [asyncio.create_task(coalesce(i)) for i in range(5)]
        await asyncio.sleep(0.001)  # the first batch is out
        later = [asyncio.create_task(coalesce(i)) for i in range(5, 8)]
        await asyncio.gather(*first, *later)
        await coalesce(9)  # alone: a batch of its own, at once

    asyncio.run(go())
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7], [9]]


def test_every_writer_of_a_failed_batch_gets_its_error_and_the_next_batch_goes_on() -> None:
    failed = [True]

    async def write(items: Sequence[str]) -> None:
        if failed.pop() if failed else False:
            raise ConnectionError("Redis away")

    async def go() -> list[BaseException | None]:
        coalesce = Coalescer[str](write)
        results = await asyncio.gather(coalesce("a"), coalesce("b"), return_exceptions=True)
        await coalesce("c")  # the next batch is written
        return list(results)

    results = asyncio.run(go())
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]


def test_a_cancelled_writer_does_not_break_its_batch() -> None:
    async def write(items: Sequence[int]) -> None:
        await asyncio.sleep(0.01)

    async def go() -> None:
        coalesce = Coalescer[int](write)
        gone, kept = asyncio.create_task(coalesce(1)), asyncio.create_task(coalesce(2))
        await asyncio.sleep(0.001)
        gone.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(go())
