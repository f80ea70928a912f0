"""Where journeys come from: the journeys file (``{policy: {...}, journeys: [...]}`` in YAML, the shipped
``journeys.yaml`` or the user's, read-only) and the ones made through the API (SQL); ids are unique across
both. The file's policy applies to every journey without one of its own. Every error names the file,
the journey, the step and what is wrong, e.g.
``journey file journeys.yaml: journey 'review', step 'ask': template: template syntax error on line 1: …``.

A journeys file may name settings as ``${name}`` (:func:`file_values`): the shipped alert journeys take
their waits from the settings the notifier's alerts always had (``CRMHUB_ABANDONMENT_DELAY_S`` …), so
those settings keep working, and a copy in the user's own file follows them too unless edited.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from crmhub.core.errors import ConfigError
from crmhub.core.setting_values import parse_complaint_sla
from crmhub.core.settings import Settings
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


_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]*)\}")


def file_values(settings: Settings) -> dict[str, str]:
    """What a journeys file may name as ``${name}``: seconds for the delays and SLAs, the others as set."""
    browse = settings.browse_abandonment_delay_s
    values = {
        "abandonment_delay_s": f"{settings.abandonment_delay_s:g}",
        "browse_abandonment_delay_s": f"{browse:g}",
        "browse_abandonment_status": "active" if browse else "paused",  # 0: browse abandonment is off
        "complaint_vip_spend": str(settings.complaint_vip_spend),
    }
    sla = parse_complaint_sla(settings.complaint_sla)
    return values | {f"complaint_sla_{priority}_s": f"{seconds:g}" for priority, seconds in sla.items()}


def substitute(text: str, values: dict[str, str], origin: str) -> str:
    """``text`` with each ``${name}`` replaced by its value; an unknown name is an error."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise JourneyError(f"journey file {origin}: unknown setting ${{{match[1]}}} (one of {', '.join(values)})")
        return values[match[1]]

    return _VARIABLE.sub(value, text)


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


def load_journeys(settings: Settings | None = None) -> list[Journey]:
    """The journeys of the settings' journeys file, or the shipped ones (with the default settings when
    none are given), their ``${name}`` settings filled in."""
    settings = settings or Settings.model_construct()
    path = settings.journeys_file
    if path is None:
        text, origin = resources.files("services.notifier.journeys").joinpath(SHIPPED).read_text(), SHIPPED
    else:
        text, origin = path.read_text(), str(path)
    return parse_journeys(substitute(text, file_values(settings), origin), origin)


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


def current_journeys(settings: Settings, store: JourneyStore) -> tuple[list[Journey], set[str]]:
    """The journeys in force (file, then SQL), and the ids the file defines."""
    file_journeys = load_journeys(settings)
    return combine(file_journeys, store.journeys()), {j.id for j in file_journeys}
