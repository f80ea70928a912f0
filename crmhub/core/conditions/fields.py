"""The fields the segment language reads, and the view of a profile that gives their values.

The facets of the profile declare them (``schemas.profile.SEGMENT_FIELDS``): nothing here lists a field
by hand. Each field's rule-engine type follows from its Python annotation (:func:`data_type`), and the
view decodes, from a published profile, only the profile fields some segment field reads
(:data:`SegmentSource`, validated by pydantic like the profile itself).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from copy import copy
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from operator import attrgetter
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, create_model
from rule_engine import DataType

from crmhub.core.conditions.clock import TIME_FUNCTIONS
from schemas.profile import SEGMENT_FIELDS, Profile

_NUMBERS = (int, float, Decimal)
_SCALARS = {str: DataType.STRING, bool: DataType.BOOLEAN, datetime: DataType.DATETIME, AwareDatetime: DataType.DATETIME}


def data_type(annotation: Any) -> Any:
    """The rule-engine type of a Python annotation (``None`` in a union makes the field nullable, which
    every rule-engine type is)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        if all(k in _NUMBERS for k in kinds):
            return DataType.FLOAT
        if len(kinds) == 1:
            return data_type(kinds[0])
        raise TypeError(f"no segment type for {annotation!r}")
    if annotation in _NUMBERS:
        return DataType.FLOAT
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if origin is tuple and args[1:] == (...,):
        return DataType.ARRAY(data_type(args[0]))
    if origin is dict and args == (str, Any):
        return DataType.MAPPING(DataType.STRING, DataType.UNDEFINED)  # each value as its JSON type
    if is_typeddict(annotation):
        members = {k: data_type(v) for k, v in get_type_hints(annotation).items()}
        return DataType.OBJECT(annotation.__name__, members, accessor=dict.get)
    raise TypeError(f"no segment type for {annotation!r}")


FIELD_TYPES: dict[str, Any] = {f.name: data_type(f.type) for f in SEGMENT_FIELDS}
FIELD_TYPES |= {name: fn.data_type for name, fn in TIME_FUNCTIONS.items()}


def _source_field(name: str) -> Any:
    """The profile's field, optional here (a required one defaults to None: tests and tools build views
    of partial documents). A nested model's default is one shared instance, not a new one per profile:
    the source is only read."""
    info = Profile.model_fields[name]
    annotation: Any = info.annotation
    if info.is_required():
        return (annotation | None, None)
    factory = info.default_factory
    if isinstance(factory, type) and issubclass(factory, BaseModel):
        shared = factory()
        return (annotation, Field(default_factory=lambda: shared))
    return (annotation, copy(info))


_READS = sorted({name for f in SEGMENT_FIELDS for name in f.reads} | {"merged_into"})
_SOURCE_FIELDS: dict[str, Any] = {name: _source_field(name) for name in _READS}
_ALWAYS = {"profile_id", "version", "merged_into"}  # what the segmenter reads of every change


def source_model(names: Iterable[str]) -> Any:
    """The model of a profile as the segment fields ``names`` read it: only the profile fields they are
    computed from (and the id, the version and ``merged_into``); every other field is skipped by the
    JSON parser, not decoded (a stream's records: :func:`sources_decoder`)."""
    wanted = set(names)
    reads = {name for f in SEGMENT_FIELDS if f.name in wanted for name in f.reads} | _ALWAYS
    fields = {name: _SOURCE_FIELDS[name] for name in sorted(reads)}
    return create_model("SegmentSource", __config__=ConfigDict(extra="ignore"), **fields)


def sources_decoder(names: Iterable[str]) -> Callable[[bytes], list[Any]]:
    """A record of crm.profile-changes.v1 (a JSON list of profiles) decoded in one pass from its bytes to
    sources of the segment fields ``names`` (:func:`source_model`): no dict of the whole documents is
    built first (the profile service wrote them: trusted, typed)."""
    adapter: TypeAdapter[list[Any]] = TypeAdapter(list[source_model(names)])  # type: ignore[misc,arg-type]
    return adapter.validate_json


SegmentSource = source_model(FIELD_TYPES)  # every segment field's sources: tools and tests


# pydantic gives parsed times its own tzinfo class, with which every subtraction (days_since, next_flip)
# costs 2 µs instead of 0.75: the view's times are moved to datetime's UTC once
_TIMES = frozenset(f.name for f in SEGMENT_FIELDS if FIELD_TYPES[f.name] == DataType.DATETIME)


def view_reader(names: Iterable[str]) -> Callable[[Any], dict[str, Any]]:
    """The view of the segment fields ``names`` (and ``profile_id``) of a typed profile: a
    :data:`SegmentSource`, or a :class:`schemas.profile.Profile` itself (it has every field a source has).
    The segmenter reads only what its segments read: computing a field costs, even one nobody reads."""
    wanted = {"profile_id", *names}
    stored = tuple(f.name for f in SEGMENT_FIELDS if f.stored and f.name in wanted)
    read_stored = attrgetter(*stored)  # one call for all of them (a view is built per profile change)
    computed = tuple((f.name, f.get) for f in SEGMENT_FIELDS if not f.stored and f.name in wanted)
    times = tuple(name for name in _TIMES if name in wanted)

    def view_of(source: Any) -> dict[str, Any]:
        values: Any = read_stored(source)
        view = dict(zip(stored, values, strict=True)) if len(stored) > 1 else {stored[0]: values}
        for name, get in computed:
            view[name] = get(source)
        for name in times:
            if (at := view[name]) is not None and at.tzinfo is not UTC:
                view[name] = at.astimezone(UTC)
        return view

    return view_of


source_view = view_reader(f.name for f in SEGMENT_FIELDS)  # every segment field (time functions aside)


def doc_view_reader(names: Iterable[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The view of the segment fields ``names`` of a profile document (JSON, as published): only the
    profile fields they are computed from are decoded (decoding a whole profile for its view costs)."""
    wanted = set(names)
    model, view_of = source_model(wanted), view_reader(wanted)
    return lambda doc: view_of(model.model_validate(doc))


def profile_view(profile: dict[str, Any]) -> dict[str, Any]:
    """The view of a profile as published on crm.profile-changes.v1 (JSON); fields it lacks take their
    defaults. Tools and tests; a stream decodes its records straight to sources (:func:`sources_decoder`)."""
    return source_view(SegmentSource.model_validate(profile))


class LazyView(Mapping[str, Any]):
    """The view of a profile as published (JSON), like :func:`profile_view`, with each field computed when
    it is first read: a journey step reads a handful of the hundred fields, and computing them all cost
    ~50 µs per customer read. ``known``: fields computed already (from the same document)."""

    def __init__(self, doc: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> None:
        self._doc, self._values = doc, dict(known or {})

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name not in _VIEW_NAMES:
            raise KeyError(name)
        value = self._values[name] = _field_of(name)(self._doc)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(_VIEW_NAMES)

    def __len__(self) -> int:
        return len(_VIEW_NAMES)


_VIEW_NAMES = dict.fromkeys(  # in the whole view's order (:func:`view_reader`: the stored ones first)
    [*(f.name for f in SEGMENT_FIELDS if f.stored), *(f.name for f in SEGMENT_FIELDS if not f.stored)]
)


@cache
def _field_of(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """One field of the view of a document."""
    read = doc_view_reader({name})
    return lambda doc: read(doc)[name]
