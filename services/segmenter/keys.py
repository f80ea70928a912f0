"""The segmenter's own Redis keys. The membership sets others read are in
:mod:`schemas.readmodels.segments`."""

BACKFILL_KEY = "crmhub:segmenter:backfill"  # hash: "<segment>:<partition>" -> progress (JSON)


def state_key(partition: int) -> str:
    """A hash per partition of crm.profile-changes.v1: profile id -> what the segmenter last evaluated."""
    return f"crmhub:segmenter:state:{partition}"


def due_key(partition: int) -> str:
    """A sorted set per partition: profile id scored by when time alone can next change its membership."""
    return f"crmhub:segmenter:due:{partition}"


def applied_key(partition: int) -> str:
    """A hash per partition: segment -> fingerprint of the condition its membership there was computed with."""
    return f"crmhub:segmenter:applied:{partition}"
