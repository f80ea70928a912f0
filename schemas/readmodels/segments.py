"""Segment membership, as the segmenter writes it and the API and the notifier read it.

Writer: the segmenter (``services/segmenter/membership.py``). Readers: the API (a segment's members, a
profile's segments), the notifier (the segments a customer is in, carried on its alerts).
Two Redis sets describe the same membership from both sides; the segmenter updates both in one pipeline.
"""

from __future__ import annotations

from typing import Any

MEMBERS_PREFIX = "crmhub:segment:"  # a set per segment: its members' profile ids


def members_key(segment: str) -> str:
    return MEMBERS_PREFIX + segment


def profile_segments_key(profile_id: str) -> str:
    """A set per profile: the names of the segments it is in now."""
    return f"crmhub:profile-segments:{profile_id}"


def segments_of(redis: Any, profile_id: str) -> list[str]:
    """The names of the segments the profile is in, sorted (redis-py, synchronous)."""
    return sorted(m.decode() for m in redis.smembers(profile_segments_key(profile_id)))
