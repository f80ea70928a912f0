"""Message templates: Jinja2 in its sandbox, since journeys (and later the API) let users write them.

A template sees ``profile`` (the segment view of the customer: the fields the segment language reads) and
``trigger`` (what started the enrollment: the segment, the event's properties, the date). It is compiled
when the journey is defined, so a syntax error is a definition error; a value it names that is missing
renders empty. Rendering is pure: the sandbox has no clock, no I/O and no access to attributes that are
not data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)


class RenderError(Exception):
    """A template failed at render time (the sandbox refused something, a filter or an operator failed)."""


@dataclass(frozen=True)
class MessageTemplate:
    source: str
    compiled: jinja2.Template = field(compare=False, repr=False)

    def render(self, profile: Mapping[str, Any], trigger: Mapping[str, Any]) -> str:
        try:
            return self.compiled.render(profile=profile, trigger=trigger)
        except Exception as exc:  # a user's template: a division by zero is as likely as a sandbox refusal
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def compile_template(source: str) -> MessageTemplate:
    """Compile ``source``; a syntax error is a ValueError naming the line."""
    try:
        return MessageTemplate(source, _ENV.from_string(source))
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from exc
