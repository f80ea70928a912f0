"""Topic names, their specifications, and the broker incarnation id.

Every arrow between services is one of these topics; names carry a version. ``crm.meta.v1`` holds one
record, a run id written when the topics were created: stored consumer offsets are only valid for the
incarnation of the topics they were read from (see ``../shared/BROKER.md``, offsets kept outside the
broker).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from crmhub.core.setting_values import SOURCES

EVENTS = "crm.events.v1"
PROFILES = "crm.profiles.v1"
PROFILE_CHANGES = "crm.profile-changes.v1"  # internal: the same changes, in batches, for the faust stages
SEGMENTS = "crm.segments.v1"
ALERTS = "crm.alerts.v1"
DEADLETTER = "crm.deadletter.v1"
ERASURES = "crm.erasures.v1"  # a profile erased (keyed by its id): whoever keeps state about it forgets it
META = "crm.meta.v1"


def raw_topic(source: str) -> str:
    return f"crm.raw.{source}.v1"


RAW_TOPICS = tuple(raw_topic(s) for s in SOURCES)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


def topic_specs(partitions: int) -> list[TopicSpec]:
    return [
        *(TopicSpec(t, partitions) for t in RAW_TOPICS),
        TopicSpec(EVENTS, partitions),
        TopicSpec(PROFILES, partitions, compacted=True),
        TopicSpec(PROFILE_CHANGES, partitions),
        TopicSpec(SEGMENTS, partitions),
        TopicSpec(ALERTS, partitions),
        TopicSpec(DEADLETTER, partitions),
        TopicSpec(ERASURES, partitions),
        TopicSpec(META, 1),
    ]


def new_run_id() -> str:
    return uuid.uuid4().hex
