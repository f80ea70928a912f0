"""The segmenter's per-profile record in Redis: its layout round-trips."""

from __future__ import annotations

from services.segmenter.engine import PRIOR_SIZE, Prior
from services.segmenter.engine import VIEW_FIELDS as FIELDS
from services.segmenter.membership import decode_state, encode_state

PRIOR = Prior(version=12, due=1_780_000_000.5, hashes=tuple(range(len(FIELDS))))


def test_a_record_round_trips_with_and_without_segments() -> None:
    assert decode_state(encode_state(PRIOR, {"vip", "big_spenders"})) == (PRIOR, {"vip", "big_spenders"})
    assert decode_state(encode_state(PRIOR, set())) == (PRIOR, set())
    assert encode_state(PRIOR, {"b", "a"})[PRIOR_SIZE:] == b"a,b"


def test_no_record_or_a_record_of_another_layout_means_unknown() -> None:
    assert decode_state(None) == (None, set())
    assert decode_state(b"too short") == (None, set())
    other_layout = (len(FIELDS) + 1).to_bytes(2, "little") + encode_state(PRIOR, {"vip"})[2:]
    assert decode_state(other_layout) == (None, set())
