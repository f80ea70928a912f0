"""What the notifier remembers about one profile: its abandonment waits and its complaints' SLA clocks.

These are plain frozen values; the faust adapter (``services/notifier/app.py``) keeps them in two tables
as JSON documents, in the format earlier versions wrote (so a changelog written before stays readable):

- ``abandonment``: ``"<kind>:<profile id>"`` -> ``{"pending", "version", "due"}``
- ``complaints``: ``<profile id>`` -> ``{"timers": {message id: timer}, "version", "due"}``

``version`` is the profile version the entry was set from (a cached profile older than that is not used
to re-check it), ``due`` the next due time as a timestamp (None: nothing left to fire), which is what the
due index (``timers.py``) reads. The adapter adds ``"partition"``: where the entry was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from services.notifier.abandonment import Kind, Pending
from services.notifier.complaints import ComplaintTimer, next_due

TableName = Literal["abandonment", "complaints"]
KINDS: tuple[Kind, ...] = get_args(Kind)


def wait_key(kind: Kind, profile_id: str) -> str:
    return f"{kind}:{profile_id}"


def profile_of_key(table: TableName, key: str) -> str:
    """The profile id in a table key."""
    return key if table == "complaints" else key.partition(":")[2]


@dataclass(frozen=True)
class Wait:
    """An abandonment timer: what is pending, from which profile version, and whether it has fired."""

    pending: Pending
    version: int
    fired: bool = False

    table: ClassVar[TableName] = "abandonment"

    @property
    def key(self) -> str:
        return wait_key(self.pending.kind, self.pending.profile_id)

    @property
    def due(self) -> float | None:
        return None if self.fired else self.pending.due_at.timestamp()

    def is_due(self, now: datetime) -> bool:
        return not self.fired and self.pending.due_at <= now

    def to_json(self) -> dict[str, Any]:
        return {"pending": self.pending.to_json(), "version": self.version, "due": self.due}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Wait:
        return cls(Pending.from_json(doc["pending"]), doc["version"], fired=doc["due"] is None)


@dataclass(frozen=True)
class ComplaintClock:
    """The SLA timers of a profile's open complaints, by message id."""

    profile_id: str
    timers: Mapping[str, ComplaintTimer]
    version: int

    table: ClassVar[TableName] = "complaints"

    @property
    def key(self) -> str:
        return self.profile_id

    @property
    def due(self) -> float | None:
        return next_due(self.timers)

    def to_json(self) -> dict[str, Any]:
        timers = {m: t.to_json() for m, t in self.timers.items()}
        return {"timers": timers, "version": self.version, "due": self.due}

    @classmethod
    def from_json(cls, profile_id: str, doc: Mapping[str, Any]) -> ComplaintClock:
        timers = {m: ComplaintTimer.from_json(t) for m, t in doc["timers"].items()}
        return cls(profile_id, timers, doc["version"])


Entry = Wait | ComplaintClock


@dataclass(frozen=True)
class ProfileTimers:
    """Everything the notifier holds for one profile (no wait and no clock: nothing)."""

    profile_id: str
    waits: Mapping[Kind, Wait] = field(default_factory=dict)
    complaints: ComplaintClock | None = None

    def entries(self) -> list[Entry]:
        return [*self.waits.values(), *([self.complaints] if self.complaints else [])]
