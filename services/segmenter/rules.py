"""Segment definitions: the segment file (YAML) and membership changes. The language they are written in
(compiling, checking, evaluating) is shared with the journeys: :mod:`crmhub.core.conditions.language`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from crmhub.core.audience import parse_sync
from crmhub.core.conditions.language import SegmentDef, compile_segment
from crmhub.core.errors import ConfigError

SHIPPED = "segments.yaml"


def parse_definitions(text: str, origin: str) -> list[SegmentDef]:
    """The definitions of a YAML document ``{segments: [{name, description, condition, sync?}, …]}`` (a
    ``sync`` setting is checked here, so a bad one stops the segmenter at start-up with a clear error)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"segment file {origin}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("segments") or [], list):
        raise ConfigError(f"segment file {origin}: expected a mapping with a 'segments' list")
    defs = []
    for i, item in enumerate(doc.get("segments") or []):
        if not isinstance(item, dict) or not item.get("name") or not item.get("condition"):
            raise ConfigError(f"segment file {origin}: entry {i} needs a name and a condition")
        try:
            defs.append(compile_segment(str(item["name"]), str(item["condition"]), str(item.get("description", ""))))
            if item.get("sync") is not None:  # sent by the notifier, which reads it again (crmhub.core.audience)
                parse_sync(item["sync"], str(item["name"]))
        except ConfigError as exc:  # a SegmentError too
            raise ConfigError(f"segment file {origin}: {exc}") from exc
    names = [d.name for d in defs]
    if len(set(names)) != len(names):
        raise ConfigError(f"segment file {origin}: duplicate segment names")
    return defs


def load_definitions(path: Path | None = None) -> list[SegmentDef]:
    """The definitions of the segment file ``path``, or of the shipped library."""
    if path is None:
        return parse_definitions(resources.files("services.segmenter").joinpath(SHIPPED).read_text(), SHIPPED)
    return parse_definitions(path.read_text(), str(path))


def membership_changes(before: set[str], after: set[str]) -> tuple[list[str], list[str]]:
    """(entered, exited), sorted for a stable output order."""
    return sorted(after - before), sorted(before - after)
