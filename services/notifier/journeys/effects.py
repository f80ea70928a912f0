"""What the journey engine asks the wiring to do: small frozen values, carried out in order.

- :class:`Send`: hand the message to the delivery outbox (``services/notifier/delivery.py``) under
  ``message_id``, which is derived from (journey, version, profile, trigger occurrence, step) alone: a
  replay, a retry or a restart makes the same id, and the outbox claims an id once.
- :class:`UpdateProfile`: a tag or trait, as an event with ``update_id`` as its id (the profile service
  folds an event id once).
- :class:`Schedule`: call :func:`~services.notifier.journeys.engine.on_due` (or, for a date trigger,
  :func:`~services.notifier.journeys.engine.on_trigger` again) at ``at``.
- :class:`Exited`, :class:`Converted`: for the customer's journey history.
- :class:`Count`: add ``amount`` to a per-step counter (entered, waiting, sent, exited:<reason>,
  converted, revenue, skipped:<why>), the figures of ``GET /v1/journeys/{id}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Send:
    message_id: str
    journey_id: str
    step: str
    channel: str
    kind: str
    profile_id: str
    rendered: str
    internal: bool = False  # for the team: routed like an internal alert
    capped: bool = False  # to the customer under the policy: the wiring adds it to their sends (Customer.sent)
    details: Mapping[str, Any] = field(default_factory=dict)  # the step's details, evaluated


@dataclass(frozen=True)
class UpdateProfile:
    update_id: str
    profile_id: str
    journey_id: str
    tag: str | None = None
    trait: str | None = None
    value: Any = None


@dataclass(frozen=True)
class Schedule:
    profile_id: str
    journey_id: str
    at: datetime


@dataclass(frozen=True)
class Exited:
    profile_id: str
    journey_id: str
    reason: str


@dataclass(frozen=True)
class Converted:
    profile_id: str
    journey_id: str
    step: str | None  # the last message sent before the goal event
    event_id: str
    revenue: Decimal


@dataclass(frozen=True)
class Count:
    journey_id: str
    step: str
    counter: str
    amount: Decimal = Decimal(1)


Effect = Send | UpdateProfile | Schedule | Exited | Converted | Count
