"""Where journeys come from: the journeys file (``{policy: {...}, journeys: [...]}`` in YAML, the shipped
``journeys.yaml`` or the user's, read-only) and the ones made through the API (SQL); ids are unique across
both. The file's policy applies to every journey without one of its own. Every error names the file,
the journey, the step and what is wrong, e.g.
``journey file journeys.yaml: journey 'review', step 'ask': template: template syntax error on line 1: …``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from crmhub.core.errors import ConfigError
from services.notifier.journeys.definition import Journey
from services.notifier.journeys.store import JourneyStore, StoredJourney

log = logging.getLogger("crmhub.notifier.journeys")
SHIPPED = "journeys.yaml"


class JourneyError(ConfigError):
    """A journey definition is wrong; the message names the journey, the step and what is wrong."""


def parse_journey(doc: Any, policy: Any = None) -> Journey:
    """One journey from its decoded document (YAML or the API's JSON); ``policy``: the default policy."""
    if not isinstance(doc, dict):
        raise JourneyError(f"a journey is a mapping, not {type(doc).__name__}")
    if policy is not None and "policy" not in doc:
        doc = {**doc, "policy": policy}
    try:
        return Journey.model_validate(doc)
    except ValidationError as exc:
        raise JourneyError(_describe(doc, exc)) from exc


def _describe(doc: dict[str, Any], exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc, message = list(error["loc"]), str(error["msg"]).removeprefix("Value error, ")
    where = f"journey {doc.get('id')!r}"
    steps = doc.get("steps")
    if loc[:1] == ["steps"] and len(loc) > 1 and isinstance(loc[1], int) and isinstance(steps, list):
        step = steps[loc[1]] if loc[1] < len(steps) else {}
        where += f", step {step.get('name') if isinstance(step, dict) else loc[1]!r}"
        loc = loc[3:]  # past the index and the step kind's tag
    field = ".".join(str(part) for part in loc if not str(part)[:1].isupper())
    return f"{where}: {field + ': ' if field else ''}{message}"


def parse_journeys(text: str, origin: str) -> list[Journey]:
    return list(_parse_journeys(text, origin))


@functools.lru_cache(maxsize=8)
def _parse_journeys(text: str, origin: str) -> tuple[Journey, ...]:
    """Cached: the notifier reads the journeys in force every second (parsing them took ~15% of its CPU)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise JourneyError(f"journey file {origin}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("journeys") or [], list):
        raise JourneyError(f"journey file {origin}: expected a mapping with a 'journeys' list")
    try:
        journeys = [parse_journey(j, doc.get("policy")) for j in doc.get("journeys") or []]
    except JourneyError as exc:
        raise JourneyError(f"journey file {origin}: {exc}") from exc
    ids = [j.id for j in journeys]
    if len(set(ids)) != len(ids):
        raise JourneyError(f"journey file {origin}: duplicate journey ids")
    return tuple(journeys)


def load_journeys(path: Path | None = None) -> list[Journey]:
    """The journeys of ``path``, or the shipped ones."""
    if path is None:
        text = resources.files("services.notifier.journeys").joinpath(SHIPPED).read_text()
        return parse_journeys(text, SHIPPED)
    return parse_journeys(path.read_text(), str(path))


def combine(file_journeys: Sequence[Journey], stored: Sequence[StoredJourney]) -> list[Journey]:
    """The file's journeys, then the ones made through the API (one the file shadows, or that no longer
    parses after an upgrade, is left out with a warning)."""
    journeys = list(file_journeys)
    ids = {j.id for j in journeys}
    for s in stored:
        if s.id in ids:
            log.warning("journey %r is defined in the journeys file; the API definition is ignored", s.id)
            continue
        try:
            journeys.append(_parse_stored(orjson.dumps(s.doc)))
        except JourneyError as exc:
            log.warning("stored journey left out: %s", exc)
    return journeys


@functools.lru_cache(maxsize=1024)
def _parse_stored(doc: bytes) -> Journey:
    """A stored journey's definition, parsed once (as the file's, it is read again every second)."""
    return parse_journey(orjson.loads(doc))


def current_journeys(path: Path | None, store: JourneyStore) -> tuple[list[Journey], set[str]]:
    """The journeys in force (file, then SQL), and the ids the file defines."""
    file_journeys = load_journeys(path)
    return combine(file_journeys, store.journeys()), {j.id for j in file_journeys}
