"""Audience sync, the pure part: which segment changes a sync webhook hears of, what each one says, when
a batch is due and what a request carries (the wiring: :mod:`services.notifier.audience_sync`).

A change goes out when it tells the receiver something: the first one of a profile, or one that differs
from the last one sent and is not older. So a change the segmenter publishes again after a crash (at
least once: the same change, or the same membership re-evaluated later) and a replay of changes already
queued are not sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from schemas.facets.consent import consented_contacts
from services.notifier.view import ProfileDoc


def marker(change: str, at: str) -> str:
    """What is remembered of the last change sent for a profile: ``"entered|<at>"``."""
    return f"{change}|{at}"


def is_news(last: str | None, change: str, at: str) -> bool:
    """Whether a change (``at``: ISO time) differs from the ``last`` one sent for the profile and is not older."""
    if last is None:
        return True
    last_change, _, last_at = last.partition("|")
    return change != last_change and datetime.fromisoformat(at) >= datetime.fromisoformat(last_at)


def sync_entry(change: Mapping[str, Any], profile: ProfileDoc | None) -> dict[str, Any]:
    """One change of a batch: the profile, entered or exited, when, and the contact points the customer
    consented to (none for a profile that is gone or erased)."""
    return {
        "profile_id": change["profile_id"],
        "change": change["change"],
        "at": change["at"],
        "contacts": consented_contacts(profile) if profile is not None else {},
    }


def batches_due(queued: int, batch: int, waited_s: float, every_s: float) -> int:
    """How many batches to cut of ``queued`` changes: every full one, and the rest once the oldest of them
    has waited ``every_s``."""
    full, rest = divmod(queued, batch)
    return full + (1 if rest and waited_s >= every_s else 0)


def batch_id(segment: str, seq: int) -> str:
    """The id of a segment's ``seq``-th batch: its ``Idempotency-Key``, the same on every attempt."""
    return f"{segment}-{seq}"


def batch_body(segment: str, seq: int, changes: bytes) -> bytes:
    """The request body: ``changes`` is the batch as it was cut (a JSON array), byte for byte."""
    head = orjson.dumps({"batch_id": batch_id(segment, seq), "segment": segment})
    return head[:-1] + b',"changes":' + changes + b"}"
