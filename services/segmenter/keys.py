"""Redis keys of segment membership (written by the segmenter, read by the API and the notifier)."""

MEMBERS_PREFIX = "crmhub:segment:"  # a set per segment: its members' profile ids
BACKFILL_KEY = "crmhub:segmenter:backfill"  # hash: "<segment>:<partition>" -> progress (JSON)


def members_key(segment: str) -> str:
    return MEMBERS_PREFIX + segment


def profile_segments_key(profile_id: str) -> str:
    """A set per profile: the names of the segments it is in now."""
    return f"crmhub:profile-segments:{profile_id}"


def state_key(partition: int) -> str:
    """A hash per partition of crm.profile-changes.v1: profile id -> what the segmenter last evaluated."""
    return f"crmhub:segmenter:state:{partition}"


def due_key(partition: int) -> str:
    """A sorted set per partition: profile id scored by when time alone can next change its membership."""
    return f"crmhub:segmenter:due:{partition}"


def applied_key(partition: int) -> str:
    """A hash per partition: segment -> fingerprint of the condition its membership there was computed with."""
    return f"crmhub:segmenter:applied:{partition}"
