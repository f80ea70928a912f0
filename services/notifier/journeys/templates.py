"""Message templates and expressions: Jinja2 in its sandbox, since journeys (and the API) let users write
them.

Both see the same names (:func:`context` builds them): ``profile`` (the segment view of the customer: the
fields the segment language reads), ``record`` (the stored profile as published, e.g.
``record.cart["items"]``), ``segments`` (the segments the customer is in), ``trigger`` (what started the
enrollment: kind, id, name, at, data: the segment change, the event's properties, the date, the profile
list's item), ``vars`` (what the enrollment's ``set`` steps computed), ``contact`` (the channel and
address a message goes to, None: none) and ``now``; a message's template also sees its step's
``details``. A template renders text; an expression (a ``set`` step's values, a ``send`` step's
``details``, a computed wait) gives a value, such as a list or a number. The filter ``datetime`` reads an
ISO 8601 time (``trigger.at | datetime``). Both are compiled when the journey is defined, so a syntax
error is a definition error; a value they name that is missing is empty (None). They are pure: the
sandbox has no clock (``now`` is given), no I/O and no access to attributes that are not data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)
_ENV.filters["datetime"] = datetime.fromisoformat  # trigger.at and the record's times are ISO 8601 text


class RenderError(Exception):
    """A template failed at render time (the sandbox refused something, a filter or an operator failed)."""


@dataclass(frozen=True)
class MessageTemplate:
    source: str
    compiled: jinja2.Template = field(compare=False, repr=False)

    def render(self, names: Mapping[str, Any]) -> str:
        try:
            return self.compiled.render(names)
        except Exception as exc:  # a user's template: a division by zero is as likely as a sandbox refusal
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Expression:
    source: str
    compiled: Callable[..., Any] = field(compare=False, repr=False)

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The value, made JSON-able (decimals as text, times in ISO 8601, tuples as lists)."""
        try:
            return jsonable(self.compiled(**names))
        except Exception as exc:  # as for templates: anything a user's expression may do wrong
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def context(
    view: Mapping[str, Any],
    record: Mapping[str, Any],
    segments: frozenset[str],
    trigger: Mapping[str, Any],
    values: Mapping[str, Any],
    now: datetime,
    contact: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The names templates and expressions see (the module's docstring)."""
    return {
        "profile": view,
        "record": record,
        "segments": sorted(segments),
        "trigger": trigger,
        "vars": values,
        "contact": contact,
        "now": now,
    }


def compile_template(source: str) -> MessageTemplate:
    """Compile ``source``; a syntax error is a ValueError naming the line."""
    try:
        return MessageTemplate(source, _ENV.from_string(source))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc


def compile_expression(source: str) -> Expression:
    """Compile the expression ``source``; a syntax error is a ValueError."""
    try:
        return Expression(source, _ENV.compile_expression(source, undefined_to_none=True))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"expression syntax error: {exc.message}") from exc
