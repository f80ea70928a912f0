"""What a handler asks the runtime to do, as small frozen values (FastStream: what a handler returns is
what gets published; Bytewax: ``mapper(state, value) -> (state, emit)``).

A handler is ``handle(batch, now) -> Outcome``: it reads its own state (Redis, SQL, behind the ports its
service object was built with), decides, and returns the effects of the batch and how to commit it. The
runtime (``crmhub.core.runtime``) carries them out in one order, the same for every service:

1. ``Publish`` / ``PublishBatch`` / ``DeadLetter`` records are sent, in the order given, then flushed;
2. one Redis pipeline: ``RedisWrite``s (the service's own keys), ``Count`` (the ``crmhub:stats``
   counters the dashboard reads), the recent dead letters;
3. the metrics: ``Tally`` counters, ``Latency`` (receipt to now, per event), the dead letters' counters;
4. the commit the ``Outcome`` names.

Effects a store must see *inside* its transaction (the profile store publishes before it commits) are
carried out at that moment with ``Runtime.perform``/``Sink.carry_out``, in the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter


@dataclass(frozen=True, slots=True)
class Publish:
    """One record to ``topic`` (keyed or not; to a given partition or the key's)."""

    topic: str
    value: bytes
    key: bytes | None = None
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class PublishBatch:
    """Keyed JSON documents packed as JSON-array records, one or more per partition (``send_batched``)."""

    topic: str
    items: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A ``crm.deadletter.v1`` record (``crmhub.core.deadletters.build``) and its reason's metric label;
    also kept among the dashboard's recent dead letters."""

    value: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Count:
    """Add to the flow counters in Redis (``crmhub:stats``); zeros are skipped."""

    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Tally:
    """Add to a labelled prometheus counter: one update per label set. ``touch``: make the series exist
    even when it adds zero (so a dashboard's query finds it before the first duplicate or merge)."""

    metric: Counter
    counts: Mapping[tuple[str, ...], int]
    touch: bool = False


@dataclass(frozen=True, slots=True)
class Latency:
    """Observe, per event, the time from its receipt to when the batch's effects are carried out."""

    received: Sequence[datetime | None]


@dataclass(frozen=True, slots=True)
class RedisWrite:
    """A write of the service's own Redis keys, run in the batch's one pipeline (``write(pipe)``)."""

    write: Callable[[Any], object]
    what: str = ""


Effect = Publish | PublishBatch | DeadLetter | Count | Tally | Latency | RedisWrite


class Commit(enum.Enum):
    """How the consumer's position is committed once the effects are carried out."""

    SYNC = "sync"  # the broker's committed offsets are the ones that count (ingest)
    ASYNC = "async"  # for lag monitoring only: the offsets that count are elsewhere (the profile's SQL)
    NONE = "none"  # nothing to commit (the consumer was sought back)


@dataclass(frozen=True, slots=True)
class Outcome:
    effects: Sequence[Effect] = field(default_factory=tuple)
    commit: Commit = Commit.SYNC


def counts_in(effects: Sequence[Effect]) -> dict[str, int]:
    """The flow counters the effects add up to (for tests and benchmarks)."""
    total: dict[str, int] = {}
    for effect in effects:
        if isinstance(effect, Count):
            for name, n in effect.counts.items():
                total[name] = total.get(name, 0) + n
    return total
