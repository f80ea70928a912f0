"""The value types of a journey definition, each checked when the journey is defined and written back
as the user wrote it: durations, times of day, names, conditions in the segment language, templates.

A check that fails raises ValueError (pydantic reports it with where it is; :mod:`.catalog` names the
journey and the step).
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, PlainSerializer, PlainValidator

from crmhub.core.conditions.language import NAME_CHARS, Condition, ConditionError, compile_condition
from crmhub.core.durations import format_duration, parse_duration
from schemas.facets.consent import CHANNELS
from services.notifier.journeys.templates import Expression, MessageTemplate, compile_expression, compile_template
from services.notifier.journeys.timing import parse_time_of_day


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"bad duration {value!r}: expected a number and a unit (w, d, h, m, s), like 30m or 7d")


def _time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260
        return time(value // 60 % 24, value % 60)
    return parse_time_of_day(str(value))


def _format_time_of_day(value: time) -> str:
    """HH:MM, with the seconds when there are any: a journey saved through the API keeps "09:00:30"."""
    return value.isoformat("seconds" if value.second or value.microsecond else "minutes")


def _condition(types_checked: bool) -> Any:
    def check(value: Any) -> Condition:
        if isinstance(value, Condition):
            return value
        try:
            return compile_condition(str(value)) if types_checked else compile_condition(str(value), None)
        except ConditionError as exc:
            raise ValueError(str(exc)) from exc

    return PlainValidator(check)


# never: once per customer; restart: a new occurrence ends an active enrollment and enters; parallel: every
# occurrence its own enrollment (a complaint each); a duration: again once that long has passed since entry
REENTRY_RULES = ("never", "restart", "parallel")


def _reentry(value: Any) -> str | timedelta:
    if value in REENTRY_RULES:
        return str(value)
    try:
        return _positive(_duration(value))
    except ValueError as exc:
        raise ValueError(f"reentry is never, restart, parallel or a duration like 30d, not {value!r}") from exc


def _template(value: Any) -> MessageTemplate:
    return value if isinstance(value, MessageTemplate) else compile_template(str(value))


def _expression(value: Any) -> Expression:
    return value if isinstance(value, Expression) else compile_expression(str(value))


def _wait_length(value: Any) -> timedelta | Expression:
    """A duration (not negative: a wait of a computed length may be nothing; a bare number is seconds), or
    ``"{{ expression }}"`` computing one (a duration like 15m, or seconds) when the step runs."""
    if isinstance(value, timedelta | Expression):
        return value
    if isinstance(value, int | float) or (isinstance(value, str) and _SECONDS.fullmatch(value)):
        return _not_negative(timedelta(seconds=float(value)))
    text = str(value).strip()
    if text.startswith("{{") and text.endswith("}}"):
        return compile_expression(text[2:-2])
    return _not_negative(_duration(value))


_SECONDS = re.compile(r"\d+(\.\d*)?")


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta():
        raise ValueError(f"duration must not be negative, not {format_duration(value)}")
    return value


def _name(value: str) -> str:
    if not value or not set(value) <= NAME_CHARS or len(value) > 64:
        raise ValueError(f"name {value!r} must be 1-64 characters of a-z, 0-9, _ and -")
    return value


ANY_CHANNEL = "any"  # a send step's consent: the first channel the customer consented to with an address


def _consent_channel(value: str) -> str:
    if value not in CHANNELS and value != ANY_CHANNEL:
        raise ValueError(f"unknown consent channel {value!r} (one of {', '.join(CHANNELS)}, or any)")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta():
        raise ValueError(f"duration must be positive, not {format_duration(value)}")
    return value


Duration = Annotated[timedelta, PlainValidator(_duration), PlainSerializer(format_duration, return_type=str)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
TimeOfDay = Annotated[time, PlainValidator(_time_of_day), PlainSerializer(_format_time_of_day, return_type=str)]
Name = Annotated[str, AfterValidator(_name)]
ConsentChannel = Annotated[str, AfterValidator(_consent_channel)]
ProfileCondition = Annotated[Condition, _condition(True), PlainSerializer(lambda c: c.text, return_type=str)]
PropertyCondition = Annotated[Condition, _condition(False), PlainSerializer(lambda c: c.text, return_type=str)]
Reentry = Annotated[
    str | timedelta,
    PlainValidator(_reentry),
    PlainSerializer(lambda v: v if isinstance(v, str) else format_duration(v), return_type=str),
]
ValueExpression = Annotated[
    Expression, PlainValidator(_expression), PlainSerializer(lambda e: e.source, return_type=str)
]
WaitLength = Annotated[
    timedelta | Expression,
    PlainValidator(_wait_length),
    PlainSerializer(
        lambda v: format_duration(v) if isinstance(v, timedelta) else "{{" + v.source + "}}", return_type=str
    ),
]
Template = Annotated[MessageTemplate, PlainValidator(_template), PlainSerializer(lambda t: t.source, return_type=str)]
