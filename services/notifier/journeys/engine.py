"""The journey engine, pure: an occurrence, a due time or an event in; the enrollment's new state and the
effects to carry out (:mod:`.effects`) out. No I/O, no clock (``now`` is given), no logging.

- :func:`on_trigger`: an occurrence (segment change, event, date) may enter the customer, once per
  (journey, profile, occurrence) and as the re-entry rule allows; the steps then run at once up to the
  first wait.
- :func:`on_due`: a wait (or quiet hours) is over: run on from the next step.
- :func:`on_event`: an event may convert the enrollment (the goal, attributed to the last message) or end
  it (an exit event).

Before every step the exit criteria are checked against the customer as they are now. A step runs to
completion in one call or stops at a wait, which the enrollment records with its due time; so whatever
the wiring replays (the same occurrence, the same due call), the same state gives the same effects and
the same message ids, and the delivery outbox sends each id once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from crmhub.core.durations import parse_duration
from services.notifier.journeys.definition import (
    AnyStep,
    BranchStep,
    Journey,
    SendStep,
    SetStep,
    UpdateStep,
    WaitStep,
)
from services.notifier.journeys.effects import Converted, Count, Effect, Exited, Schedule, Send, UpdateProfile
from services.notifier.journeys.gates import Customer, capped, contact, exit_reason, quiet_hours_end
from services.notifier.journeys.state import COMPLETED, Enrollment
from services.notifier.journeys.templates import Expression, RenderError, context
from services.notifier.journeys.timing import next_local
from services.notifier.journeys.triggers import (
    DATE_GRACE,
    DateTrigger,
    Occurrence,
    date_occurrence,
    fires,
    is_stale,
    occurrence_key,
)
from services.notifier.rules import alert_id

Result = tuple[Enrollment | None, list[Effect]]


def on_trigger(
    journey: Journey, enrollment: Enrollment | None, occ: Occurrence, customer: Customer, now: datetime
) -> Result:
    """Enter the customer on ``occ`` if it fires the journey's trigger and may enter; run the first steps."""
    if journey.status != "active" or not fires(journey.trigger, occ):
        return enrollment, []
    if occ.kind == "date":
        if occ.at > now:
            return enrollment, [Schedule(customer.profile_id, journey.id, occ.at)]
        if is_stale(occ, now):
            return enrollment, []
    if _entered(journey, enrollment, occ, now):
        return enrollment, _next_date(journey, occ, customer)
    ended: list[Effect] = []
    if enrollment is not None and enrollment.active and journey.reentry == "restart":
        ended = _exit(journey, enrollment, "restarted", enrollment.next_step or journey.steps[0].name)[1]
    first, key = journey.steps[0].name, occurrence_key(journey.trigger, occ)
    entered = Enrollment(journey.id, journey.version, customer.profile_id, key, now, occ.context(), first, now)
    state, effects = _run(journey, entered, customer, now)
    return state, [*ended, Count(journey.id, first, "entered"), *effects, *_next_date(journey, occ, customer)]


def may_enter(journey: Journey, enrollment: Enrollment | None, occ: Occurrence, now: datetime) -> bool:
    """Whether :func:`on_trigger` may enter the customer on ``occ`` (a date: may schedule them), told without
    the customer: False when the journey is not active, ``occ`` is not its trigger, or it entered them
    already or its re-entry rule refuses. The wiring reads a customer only for the journeys that may."""
    if journey.status != "active" or not fires(journey.trigger, occ):
        return False
    return occ.kind == "date" or not _entered(journey, enrollment, occ, now)


def _entered(journey: Journey, enrollment: Enrollment | None, occ: Occurrence, now: datetime) -> bool:
    """``occ`` entered the customer already, or the re-entry rule refuses them."""
    key = occurrence_key(journey.trigger, occ)
    return enrollment is not None and (enrollment.occurrence == key or _refused(journey, enrollment, now))


def state_key(journey: Journey, profile_id: str, occ: Occurrence) -> str:
    """Where the wiring keeps the enrollment ``occ`` is about (and passes it back to :func:`on_trigger`)."""
    if journey.reentry == "parallel":
        return f"{journey.id}:{profile_id}:{occurrence_key(journey.trigger, occ)}"
    return f"{journey.id}:{profile_id}"


def _refused(journey: Journey, enrollment: Enrollment, now: datetime) -> bool:
    if journey.reentry == "parallel":
        return False  # another occurrence's enrollment is not this one's business
    if enrollment.active:
        return journey.reentry != "restart"
    if isinstance(journey.reentry, timedelta):
        return now < enrollment.entered_at + journey.reentry
    return journey.reentry == "never"


def _next_date(journey: Journey, occ: Occurrence, customer: Customer) -> list[Effect]:
    """For a yearly date or a field of several dates: when the next one is due."""
    trigger = journey.trigger
    if occ.kind != "date" or not isinstance(trigger, DateTrigger) or not trigger.repeats:
        return []
    following = date_occurrence(trigger, customer.view, customer.zone(journey.policy), occ.at + DATE_GRACE)
    if following is None or following.at <= occ.at:  # the last of a field's dates: none comes after it
        return []
    return [Schedule(customer.profile_id, journey.id, following.at)]


def on_due(journey: Journey, enrollment: Enrollment, customer: Customer, now: datetime) -> Result:
    """Run on from the enrollment's next step if it is due (a paused journey holds until resumed)."""
    if journey.status != "active" or not enrollment.is_due(now):
        return enrollment, []
    return _run(journey, enrollment, customer, now)


def on_event(journey: Journey, enrollment: Enrollment, event: Occurrence, now: datetime) -> Result:
    """The goal (a conversion, with its revenue, to the last message sent) and the exit events."""
    effects: list[Effect] = []
    goal = journey.goal
    first = enrollment.first_sent_at
    if (
        goal
        and event.name == goal.event
        and not enrollment.converted
        and first
        and first <= event.at <= first + goal.within
    ):
        revenue = _amount(event, goal.revenue)
        step = enrollment.last_sent or journey.steps[0].name
        enrollment = replace(enrollment, converted=True)
        effects += [Converted(enrollment.profile_id, journey.id, enrollment.last_sent, event.id, revenue)]
        effects += [Count(journey.id, step, "converted"), Count(journey.id, step, "revenue", revenue)]
    trigger_data = enrollment.trigger.get("data") or {}
    for ex in journey.exit.events if enrollment.active else ():
        if event.name == ex.event and (ex.match is None or event.data.get(ex.match) == trigger_data.get(ex.match)):
            enrollment, done = _exit(journey, enrollment, f"event: {event.name}", enrollment.next_step or "")
            return enrollment, [*effects, *done]
    return enrollment, effects


def _amount(event: Occurrence, names: tuple[str, ...]) -> Decimal:
    for name in names:
        try:
            return Decimal(str(event.data[name]))
        except (KeyError, InvalidOperation):
            continue
    return Decimal(0)


@dataclass
class _Run:
    """One call's progress: the enrollment as it goes, the effects so far, this call's messages (caps)."""

    journey: Journey
    customer: Customer
    now: datetime
    enrollment: Enrollment
    effects: list[Effect] = field(default_factory=list)
    sent: list[datetime] = field(default_factory=list)

    def count(self, step: str, counter: str, amount: Decimal = Decimal(1)) -> None:
        self.effects.append(Count(self.journey.id, step, counter, amount))

    def after(self, step: str) -> str | None:
        i = self.journey.index(step) + 1
        return self.journey.steps[i].name if i < len(self.journey.steps) else None

    def go(self, step: str | None) -> None:
        self.enrollment = replace(self.enrollment, next_step=step)

    def names(self, values: Mapping[str, Any] | None = None, to: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What templates and expressions see now (``values``: the enrollment's vars)."""
        c, e = self.customer, self.enrollment
        return context(c.view, c.record, c.segments, e.trigger, e.vars if values is None else values, self.now, to)


def _run(journey: Journey, enrollment: Enrollment, customer: Customer, now: datetime) -> Result:
    """Run steps from the next one until a wait, the end or an exit (branches only go forward: it stops)."""
    run = _Run(journey, customer, now, replace(enrollment, waiting_in=None), sent=list(customer.sent))
    if enrollment.waiting_in:
        run.count(enrollment.waiting_in, "waiting", Decimal(-1))
    last = enrollment.next_step or journey.steps[0].name
    while (name := run.enrollment.next_step) is not None:
        if name not in {s.name for s in journey.steps}:  # a new version dropped the step
            return _finish(run, "step_removed", last)
        reason = exit_reason(journey, run.enrollment, customer, now)
        if reason is not None:
            return _finish(run, reason, name)
        last = name
        if _step(run, journey.steps[journey.index(name)]):
            return run.enrollment, run.effects
    return _finish(run, COMPLETED, last)


def _finish(run: _Run, reason: str, step: str) -> Result:
    enrollment, done = _exit(run.journey, run.enrollment, reason, step)
    return enrollment, [*run.effects, *done]


def _exit(journey: Journey, enrollment: Enrollment, reason: str, step: str) -> tuple[Enrollment, list[Effect]]:
    effects: list[Effect] = [Exited(enrollment.profile_id, journey.id, reason)]
    if enrollment.waiting_in:
        effects.append(Count(journey.id, enrollment.waiting_in, "waiting", Decimal(-1)))
    return enrollment.end(reason), [*effects, Count(journey.id, step, f"exited: {reason}")]


def _step(run: _Run, step: AnyStep) -> bool:
    """Run one step; True when the enrollment stops here (a wait, quiet hours, an exit step)."""
    if isinstance(step, WaitStep):
        return _wait(run, step)
    if isinstance(step, BranchStep):
        holds = step.branch.holds(run.customer.view, run.now)
        run.count(step.name, "branch: then" if holds else "branch: else")
        run.go(step.then if holds else step.otherwise or run.after(step.name))
        return False
    if isinstance(step, SendStep):
        return _send(run, step)
    if isinstance(step, SetStep):
        return _set(run, step)
    if isinstance(step, UpdateStep):
        e = run.enrollment
        update_id = alert_id("journey_update", e.journey_id, str(e.version), e.profile_id, e.occurrence, step.name)
        run.effects.append(UpdateProfile(update_id, e.profile_id, e.journey_id, step.tag, step.trait, step.value))
        run.count(step.name, "updated")
        run.go(run.after(step.name))
        return False
    run.enrollment, done = _exit(run.journey, run.enrollment, step.exit, step.name)
    run.effects += done
    return True


def _hold(run: _Run, step: str, until: datetime, next_step: str | None) -> bool:
    run.enrollment = replace(run.enrollment, next_step=next_step, due_at=until, waiting_in=step)
    run.count(step, "waiting")
    run.effects.append(Schedule(run.enrollment.profile_id, run.journey.id, until))
    return True


def _wait(run: _Run, step: WaitStep) -> bool:
    """Hold until the wait ends. One that has ended already (counted from the trigger) holds until now: the
    next step runs from the due path, on the customer read afresh, not on what the trigger saw (a cart
    entered late, from an old profile change, may have been bought since)."""
    length = step.wait
    if isinstance(length, Expression):
        try:
            length = _length(length.evaluate(run.names()))
        except (RenderError, ValueError):
            return _fail(run, step.name)
    start = run.now
    if step.since == "trigger" and isinstance(at := run.enrollment.trigger.get("at"), str):
        start = datetime.fromisoformat(at)
    until = start + length if length is not None else run.now
    if step.until is not None:
        until = next_local(max(until, run.now), step.until, run.customer.zone(run.journey.policy))
    return _hold(run, step.name, max(until, run.now), run.after(step.name))


def _length(value: Any) -> timedelta:
    """A computed wait: a duration like 15m, or seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration: {value!r}")
    length = parse_duration(value) if isinstance(value, str) else timedelta(seconds=value)
    if length < timedelta():
        raise ValueError(f"a negative wait: {value!r}")
    return length


def _set(run: _Run, step: SetStep) -> bool:
    values = dict(run.enrollment.vars)
    try:
        for name, expression in step.values.items():
            values[name] = expression.evaluate(run.names(values))
    except RenderError:
        return _fail(run, step.name)
    run.enrollment = replace(run.enrollment, vars=values)
    run.count(step.name, "set")
    run.go(run.after(step.name))
    return False


def _fail(run: _Run, step: str) -> bool:
    """An expression failed for this customer (a value of the wrong type): they leave the journey."""
    run.enrollment, done = _exit(run.journey, run.enrollment, "failed", step)
    run.effects += done
    return True


def _send(run: _Run, step: SendStep) -> bool:
    policy, e = run.journey.policy, run.enrollment
    to = contact(run.customer, step.consent) if step.consent is not None else None
    internal = step.consent is not None and to is None
    if internal and step.without_consent == "skip":
        return _skip(run, step, "consent")
    to_customer = step.consent is not None and not internal and step.throttled
    quiet_end = quiet_hours_end(policy, run.customer, run.now) if to_customer else None
    if quiet_end is not None:
        return _hold(run, step.name, quiet_end, step.name)  # the same step, once the quiet hours end
    if to_customer and capped(policy, run.sent, run.now):
        return _skip(run, step, "cap")
    names = run.names(to=to)
    try:
        details = {name: expression.evaluate(names) for name, expression in step.details.items()}
        rendered = step.template.render({**names, "details": details})
    except RenderError:
        return _skip(run, step, "template")
    message_id = alert_id(step.kind, e.journey_id, str(e.version), e.profile_id, e.occurrence, step.name)
    send = Send(
        message_id, e.journey_id, step.name, step.send, step.kind, e.profile_id, rendered, internal, to_customer
    )
    run.effects.append(replace(send, details=details))
    run.count(step.name, "sent")
    run.sent += [run.now] if to_customer else []
    first_sent_at = e.first_sent_at or run.now
    run.enrollment = replace(e, next_step=run.after(step.name), first_sent_at=first_sent_at, last_sent=step.name)
    return False


def _skip(run: _Run, step: SendStep, why: str) -> bool:
    run.count(step.name, f"skipped: {why}")
    run.go(run.after(step.name))
    return False
