"""When may the intake journal forget a record? Once the profile store has folded it (pure logic).

Nothing downstream names journal records, so the journal learns it through offsets, in two steps per
checkpoint. A checkpoint is taken at the forwarder's acknowledged seq ``S`` with the raw-topic offsets
the broker gave those records:

1. when ingest's committed offsets are past every one of those raw offsets, every record up to ``S`` is
   on ``crm.events.v1`` (ingest commits after its producer flushed): the checkpoint then notes the
   events topic's end offsets at that moment;
2. when the offsets the profile store saved with its profiles reach those ends, everything up to ``S``
   is folded, and the journal is trimmed up to ``S``.

Both comparisons are pure, so the whole protocol is tested on plain values; the wiring reads the offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

RawPartition = tuple[str, int]


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # every journal record up to this seq ...
    raw: Mapping[RawPartition, int]  # ... is in the raw topics at or below these offsets
    events: Mapping[int, int] | None = None  # once ingest passed them: crm.events.v1's end offsets then


def passed_ingest(cp: Checkpoint, committed: Mapping[RawPartition, int]) -> bool:
    """Whether ingest's committed offsets (the next offset to read) are past every raw offset of ``cp``."""
    return all(committed.get(tp, 0) > offset for tp, offset in cp.raw.items())


def passed_profile(cp: Checkpoint, stored: Mapping[int, int]) -> bool:
    """Whether the profile store's offsets (next offset per events partition) reach ``cp``'s events ends."""
    return cp.events is not None and all(stored.get(p, 0) >= end for p, end in cp.events.items())


@dataclass(frozen=True)
class Progress:
    """The pending checkpoints, oldest first, and how far the journal may be trimmed."""

    pending: tuple[Checkpoint, ...] = ()
    folded: int = 0

    def taken(self, seq: int, raw: Mapping[RawPartition, int]) -> Progress:
        """A new checkpoint at ``seq`` (none when nothing was acknowledged since the last one)."""
        last = self.pending[-1].seq if self.pending else self.folded
        return self if seq <= last else replace(self, pending=(*self.pending, Checkpoint(seq, dict(raw))))

    def waiting_for_ingest(self) -> Checkpoint | None:
        return next((cp for cp in self.pending if cp.events is None), None)

    def ingest_passed(self, cp: Checkpoint, events_ends: Mapping[int, int]) -> Progress:
        """``cp`` is on the events topic, below ``events_ends``."""
        done = replace(cp, events=dict(events_ends))
        return replace(self, pending=tuple(done if c is cp else c for c in self.pending))

    def profile_reached(self, stored: Mapping[int, int]) -> Progress:
        """Drop the checkpoints the profile store has passed (in order); ``folded`` is the latest one's seq."""
        pending, folded = list(self.pending), self.folded
        while pending and passed_profile(pending[0], stored):
            folded = pending.pop(0).seq
        return Progress(tuple(pending), folded)
