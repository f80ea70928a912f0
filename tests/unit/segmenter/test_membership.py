"""The segmenter's per-profile record in Redis: its format round-trips."""

from __future__ import annotations

import struct

from services.segmenter.engine import Prior
from services.segmenter.membership import decode_state, encode_state

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
