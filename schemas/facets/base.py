"""What a facet declares besides its fields: the segment fields it exposes.

A segment field is a value the segment language can read (``crmhub.core.conditions.language``). Its type is
never written by hand: a field the facet stores is exposed with the type of its model annotation
(:func:`stored`); a value computed from stored fields is exposed with the return annotation of the
function that computes it (:func:`computed`). ``reads`` names the profile fields a segment field needs,
so a reader can decode only those (the segmenter does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, get_type_hints

from pydantic import BaseModel


@dataclass(frozen=True)
class SegmentField:
    name: str
    type: Any  # a Python type annotation: int, Decimal, datetime | None, tuple[str, ...], a TypedDict…
    reads: tuple[str, ...]  # the profile fields the value is computed from
    get: Callable[[Any], Any]  # profile (or any object with the ``reads`` attributes) -> value
    stored: bool = False  # the value is the attribute of the same name, as it is


def stored(facet: type[BaseModel], *names: str) -> list[SegmentField]:
    """Fields of ``facet`` exposed as they are, under their own names, with their annotated types."""
    return [SegmentField(n, facet.model_fields[n].annotation, (n,), attrgetter(n), stored=True) for n in names]


def computed(*reads: str) -> Callable[[Callable[[Any], Any]], SegmentField]:
    """A decorator: the function (named as the segment field) computes its value from the ``reads``
    fields; its return annotation is the field's type."""

    def declare(fn: Callable[[Any], Any]) -> SegmentField:
        return SegmentField(fn.__name__, get_type_hints(fn)["return"], reads, fn)

    return declare
