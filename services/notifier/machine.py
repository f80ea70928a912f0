"""The notifier's state machine, pure: a profile change or due timers in, the profile's new timers and the
effects to carry out.

- :func:`on_profile`: a profile changed. The level-1 alert of every open complaint (and case awaiting its
  first response), the alert of every window of failed payments, of a failed delivery, of an unhappy
  survey answer or review (their ids make repeats harmless); a new complaint starts its SLA clock, an
  answered one stops it; a cart or views with nothing bought set an abandonment wait, a change of them
  restarts it, an order or an emptied cart cancels it.
- :func:`on_due`: some of the profile's timers came due. Each is re-checked against the freshest profile
  there is (:class:`Fresh`, read when it fires): a wait still called for raises its alert and is marked
  fired (one alert per wait); an unanswered complaint escalates one level and waits one more SLA; an
  erased profile loses its timers without an alert.

Effects are small frozen values (:class:`RaiseAlert`, :class:`SetTimer`, :class:`ClearTimer`) carried out
in order by the adapter (``services/notifier/app.py``). A step raises its alerts before it writes the
timers that record them: should the process die in between, the timer is still due and fires again, and
the alert id (claimed once in Redis) keeps the repeat from reaching anyone. No I/O, no clock (``now`` is
given), no logging here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas.outputs import Alert
from services.notifier.abandonment import Kind, abandonment_alert, pending_for, still_due
from services.notifier.complaints import ComplaintTimer, SlaPolicy, escalate, still_open, track_complaints
from services.notifier.deliveries import delivery_alerts
from services.notifier.feedback import feedback_alerts
from services.notifier.payments import payment_alerts
from services.notifier.state import ComplaintClock, Entry, ProfileTimers, TableName, Wait, wait_key
from services.notifier.view import ProfileDoc


@dataclass(frozen=True)
class Rules:
    """The notifier's settings: the abandonment kinds that are on with their delays, the complaint SLAs,
    the window in which failed payments of one order are one alert."""

    delays: Mapping[Kind, timedelta]
    sla: SlaPolicy
    payment_window: timedelta


@dataclass(frozen=True)
class Fresh:
    """What due timers are re-checked against: the freshest profile at hand (None: none), the segments the
    customer is in, whether the profile was erased."""

    profile: ProfileDoc | None = None
    segments: tuple[str, ...] = ()
    erased: bool = False


@dataclass(frozen=True)
class RaiseAlert:
    alert: Alert


@dataclass(frozen=True)
class SetTimer:
    entry: Entry


@dataclass(frozen=True)
class ClearTimer:
    table: TableName
    key: str


Effect = RaiseAlert | SetTimer | ClearTimer
Step = tuple[ProfileTimers, list[Effect]]


def on_profile(rules: Rules, state: ProfileTimers, change: ProfileDoc, now: datetime) -> Step:
    """A profile changed: alerts due at once, and the complaint clock and abandonment waits it calls for."""
    version = change.get("version", 0)
    clock, complaint_effects = _watch_complaints(rules, state.complaints, change, version, now)
    waits: dict[Kind, Wait] = {k: w for k, w in state.waits.items() if k not in rules.delays}  # kinds now off
    wait_effects: list[Effect] = []
    for kind, delay in rules.delays.items():
        wait, effects = _watch_wait(kind, delay, state.waits.get(kind), change, version)
        wait_effects += effects
        if wait is not None:
            waits[kind] = wait
    payments: list[Effect] = [RaiseAlert(a) for a in payment_alerts(change, rules.payment_window, now)]
    payments += [RaiseAlert(a) for a in delivery_alerts(change, now)]
    payments += [RaiseAlert(a) for a in feedback_alerts(change, now)]
    return ProfileTimers(state.profile_id, waits, clock), [*payments, *complaint_effects, *wait_effects]


def _watch_complaints(
    rules: Rules, clock: ComplaintClock | None, change: ProfileDoc, version: int, now: datetime
) -> tuple[ComplaintClock | None, list[Effect]]:
    known: Mapping[str, ComplaintTimer] = clock.timers if clock is not None else {}
    timers, alerts = track_complaints(known, change, rules.sla, now)
    raised: list[Effect] = [RaiseAlert(a) for a in alerts]
    if timers.keys() == known.keys():
        return clock, raised
    if not timers:  # the last open complaint was answered
        return None, [*raised, ClearTimer("complaints", change["profile_id"])]
    after = ComplaintClock(change["profile_id"], timers, version)  # a new complaint starts its clock
    return after, [*raised, SetTimer(after)]


def _watch_wait(
    kind: Kind, delay: timedelta, current: Wait | None, change: ProfileDoc, version: int
) -> tuple[Wait | None, list[Effect]]:
    pending = pending_for(kind, change, delay)
    if pending is None:  # ordered, emptied, carted before the delay: cancelled
        return None, [ClearTimer("abandonment", wait_key(kind, change["profile_id"]))] if current else []
    if current is not None and current.pending.since == pending.since:
        return current, []
    after = Wait(pending, version)  # a new or changed cart (a new view) restarts the wait
    return after, [SetTimer(after)]


def on_due(rules: Rules, state: ProfileTimers, fresh: Fresh, now: datetime) -> Step:
    """Fire what of the profile's timers is due at ``now``, re-checked against ``fresh``."""
    if fresh.erased:  # no alert for an erased person: their timers go
        return ProfileTimers(state.profile_id), [ClearTimer(e.table, e.key) for e in state.entries()]
    waits: dict[Kind, Wait] = {}
    effects: list[Effect] = []
    for wait in state.waits.values():
        after, done = _fire_wait(rules, wait, fresh, now)
        effects += done
        if after is not None:
            waits[wait.pending.kind] = after
    clock, done = _fire_complaints(rules, state.complaints, fresh, now)
    return ProfileTimers(state.profile_id, waits, clock), [*effects, *done]


def _fire_wait(rules: Rules, wait: Wait, fresh: Fresh, now: datetime) -> tuple[Wait | None, list[Effect]]:
    delay = rules.delays.get(wait.pending.kind)
    if delay is None:  # the kind was switched off since the wait was set
        return None, [ClearTimer(wait.table, wait.key)]
    if not wait.is_due(now):
        return wait, []
    profile = newer(fresh.profile, wait.version)
    if not still_due(wait.pending, profile, delay):
        return wait, []  # an order or a change since: its profile change, on its way, updates the wait
    fired = replace(wait, fired=True)
    alert = abandonment_alert(wait.pending, profile, list(fresh.segments), now)
    return fired, [RaiseAlert(alert), SetTimer(fired)]


def _fire_complaints(
    rules: Rules, clock: ComplaintClock | None, fresh: Fresh, now: datetime
) -> tuple[ComplaintClock | None, list[Effect]]:
    due = {m: t for m, t in clock.timers.items() if t.is_due(now)} if clock is not None else {}
    if clock is None or not due:
        return clock, []
    profile = newer(fresh.profile, clock.version)
    timers = dict(clock.timers)
    raised: list[Effect] = []
    for message_id, timer in due.items():
        if not still_open(timer, profile):
            del timers[message_id]  # answered: the reply's profile change is on its way
            continue
        timers[message_id], alert = escalate(timer, rules.sla, now)
        raised.append(RaiseAlert(alert))
    if not timers:
        return None, [*raised, ClearTimer(clock.table, clock.key)]
    after = replace(clock, timers=timers)
    return after, [*raised, SetTimer(after)]


def newer(profile: ProfileDoc | None, version: int) -> ProfileDoc | None:
    """The cached profile if it is at least as new as what the timer was set from (else None)."""
    return profile if profile is not None and profile.get("version", 0) >= version else None
