"""The segmenter's per-profile record in Redis: its format round-trips."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import redis.asyncio as aioredis

from schemas.readmodels.profiles import mark_erased
from schemas.readmodels.segments import members_key, segments_of
from services.segmenter.engine import Outcome, Prior
from services.segmenter.keys import state_key
from services.segmenter.membership import Membership, decode_state, encode_state

PRIOR = Prior(version=12, due=1_780_000_000.5, layout=0xDEADBEEF, hashes=(1, 2, 3))


def test_a_record_round_trips_with_and_without_segments() -> None:
    assert decode_state(encode_state(PRIOR, {"vip", "big_spenders"})) == (PRIOR, {"vip", "big_spenders"})
    assert decode_state(encode_state(PRIOR, set())) == (PRIOR, set())
    assert encode_state(PRIOR, {"b", "a"}).endswith(struct.pack("<3I", 1, 2, 3) + b"a,b")
    empty = Prior(version=1, due=0, layout=7, hashes=())  # a catalog whose segments read no field
    assert decode_state(encode_state(empty, {"all"})) == (empty, {"all"})


def test_no_record_or_a_record_of_another_format_means_unknown() -> None:
    assert decode_state(None) == (None, set())
    assert decode_state(b"too short") == (None, set())
    # the previous format: the number of view fields (2 bytes), version, due, a hash per field
    previous = struct.pack("<Hqd3I", 3, 12, 0.0, 1, 2, 3) + b"vip"
    assert decode_state(previous) == (None, set())
    assert decode_state(encode_state(PRIOR, {"vip"})[:-8]) == (None, set())  # cut short


def test_a_change_written_after_the_profile_was_erased_is_taken_back(redis_client: Any) -> None:
    """An erasure removes the membership there is; a change already on its way when it came is written
    after it, finds the erasure mark and takes its membership back (the other profile's stays)."""
    mark_erased(redis_client, "p-gone")
    outcomes = [outcome("p-gone", ["vip", "big_spenders"]), outcome("p-kept", ["vip"])]

    async def write() -> tuple[int, int]:
        client = aioredis.Redis(unix_socket_path=redis_client.socket_file)
        try:
            return await Membership(client).write(0, outcomes, changes=2)
        finally:
            await client.aclose()

    assert asyncio.run(write()) == (3, 0)  # entries counted as written
    assert segments_of(redis_client, "p-gone") == [] and segments_of(redis_client, "p-kept") == ["vip"]
    assert redis_client.smembers(members_key("vip")) == {b"p-kept"}
    assert redis_client.smembers(members_key("big_spenders")) == set()
    assert redis_client.hkeys(state_key(0)) == [b"p-kept"]


def outcome(pid: str, entered: list[str]) -> Outcome:
    return Outcome(pid, 1, frozenset(entered), entered, [], PRIOR, None, evaluated=len(entered))
