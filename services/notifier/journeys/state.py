"""What the engine remembers of one customer in one journey: a small frozen value the wiring keeps in a
faust table as JSON (:meth:`Enrollment.to_json`) under :func:`~services.notifier.journeys.engine.state_key`:
per (journey, profile) the latest enrollment only (what the re-entry rule and replays are checked
against), or per occurrence for a journey whose re-entry rule is ``parallel``.

``next_step`` is the step to run when ``due_at`` comes (None: the enrollment is over, ``ended`` says
why); ``waiting_in`` the wait (or the send held by quiet hours) it is in, for the per-step counts.
``first_sent_at`` opens the goal's window and ``last_sent`` is the step a conversion is attributed to;
``vars`` holds what its ``set`` steps computed (JSON values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

COMPLETED = "completed"


@dataclass(frozen=True)
class Enrollment:
    journey_id: str
    version: int  # of the journey when the customer entered: part of every message id
    profile_id: str
    occurrence: str  # the trigger occurrence's key: one entry per (journey, profile, occurrence)
    entered_at: datetime
    trigger: Mapping[str, Any] = field(default_factory=dict)  # Occurrence.context(): templates read it
    next_step: str | None = None
    due_at: datetime | None = None
    waiting_in: str | None = None
    ended: str | None = None  # the exit reason, or "completed"
    first_sent_at: datetime | None = None
    last_sent: str | None = None
    converted: bool = False
    vars: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.ended is None

    def is_due(self, now: datetime) -> bool:
        return self.active and self.due_at is not None and self.due_at <= now

    def end(self, reason: str) -> Enrollment:
        return replace(self, next_step=None, due_at=None, waiting_in=None, ended=reason)

    def to_json(self) -> dict[str, Any]:
        """Shallow: ``trigger`` and ``vars`` are JSON values already (``asdict`` copied them deeply, a
        tenth of a millisecond per call)."""
        doc = {name: getattr(self, name) for name in _FIELDS}
        doc.update((name, None if (at := getattr(self, name)) is None else at.isoformat()) for name in _TIMES)
        doc["trigger"], doc["vars"] = dict(self.trigger), dict(self.vars)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Enrollment:
        """From :meth:`to_json`'s document; other keys (what the wiring keeps beside it) are left out."""
        kept: dict[str, Any] = {name: doc[name] for name in _FIELDS if name in doc}
        kept.update((name, None if doc[name] is None else datetime.fromisoformat(doc[name])) for name in _TIMES)
        return cls(**kept)


_TIMES = ("entered_at", "due_at", "first_sent_at")
_FIELDS = tuple(f.name for f in fields(Enrollment) if f.name not in _TIMES)
