"""Where segment definitions come from: the segment file (shipped library or ``CRMHUB_SEGMENTS_FILE``,
read-only) and the ones made through the API (SQL). Names are unique across both."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crmhub.core.conditions.clock import next_flip
from crmhub.core.conditions.fields import profile_view
from crmhub.core.conditions.language import SegmentDef, SegmentError, compile_segment, evaluate
from services.segmenter.rules import load_definitions
from services.segmenter.store import SegmentStore, StoredDefinition

log = logging.getLogger("crmhub.segmenter")


def combine(file_defs: Sequence[SegmentDef], stored: Sequence[StoredDefinition]) -> list[SegmentDef]:
    """The file's definitions, then the stored ones (a stored one that no longer compiles, or that a
    file definition shadows, is left out with a warning)."""
    defs = list(file_defs)
    names = {d.name for d in defs}
    for s in stored:
        if s.name in names:
            log.warning("segment %r is defined in the segment file; the API definition is ignored", s.name)
            continue
        try:
            defs.append(compile_segment(s.name, s.condition, s.description))
        except SegmentError as exc:
            log.warning("stored segment left out: %s", exc)
    return defs


def current(segments_file: Path | None, store: SegmentStore) -> tuple[list[SegmentDef], set[str]]:
    """The definitions in force (file, then SQL), and the names the file defines."""
    file_defs = load_definitions(segments_file)
    return combine(file_defs, store.definitions()), {d.name for d in file_defs}


def try_condition(condition: str, profile: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Check ``condition`` and evaluate it against ``profile`` (JSON, as published): whether it matches,
    the values of the fields it reads, and when time alone could change the answer. Raises
    :class:`SegmentError` for a bad condition."""
    d = compile_segment("test", condition)
    view = profile_view(profile)
    flip = next_flip(d.clock, view, now)
    return {
        "condition": condition,
        "profile_id": view["profile_id"],
        "matches": bool(evaluate([d], view, now)),
        "fields": {name: str(v) if isinstance(v := view[name], Decimal) else v for name in sorted(d.fields)},
        "next_flip_at": flip,
    }
