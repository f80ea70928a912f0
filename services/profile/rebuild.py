"""After a broker loss, hand the faust stages again what they may have lost.

The segmenter and the notifier keep their state in Redis and in faust tables whose changelogs live in
the broker. The embedded broker keeps everything in memory, so when it restarts (a hub restart, a crash
of the machine) the notifier's tables come back empty: pending cart and browse abandonments and
complaint SLAs would never fire, and a profile change the faust stages had not read yet is gone. SQL is
the record, so the profile service, when it finds its stored offsets belong only to other incarnations
of the topics (the broker it talks to is a new one), publishes again every profile changed within
``window`` to ``crm.profile-changes.v1`` before it folds anything. The faust stages treat them as
changes: the notifier's profile-triggered journeys (cart and browse abandonment, the complaint SLA)
count their waits from the profile's own times (a cart's last change, the complaint's time), so each
alert goes out when it was due and not earlier, and message ids are deterministic (the delivery claims
in Redis keep each alert to one); the segmenter compares with the memberships it keeps
in Redis, so an unchanged membership is not entered again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kafka import KafkaProducer

from crmhub.core import kafka as kafka_io
from crmhub.core.topics import EVENTS, PROFILE_CHANGES
from services.profile.store import ProfileStore


def is_new_broker(store: ProfileStore, group_id: str, incarnation: str) -> bool:
    """Whether offsets are stored, but none for this incarnation of the topics (the very first start
    stores none at all: nothing to hand again)."""
    seen = store.offset_incarnations(group_id, EVENTS)
    return bool(seen) and incarnation not in seen


def republish_recent(
    store: ProfileStore, producer: KafkaProducer, now: datetime, window: timedelta, partitions: int
) -> int:
    """Publish every profile changed within ``window`` before ``now`` to crm.profile-changes.v1; how many."""
    sent = 0
    for chunk in store.docs_changed_since(now - window):
        kafka_io.send_batched(producer, PROFILE_CHANGES, chunk, partitions)
        sent += len(chunk)
    producer.flush()
    return sent
