"""Redis keys of the segment membership view (written by the segmenter, read by the API)."""

MEMBERS_PREFIX = "crmhub:segment:"


def profile_segments_key(profile_id: str) -> str:
    return f"crmhub:profile-segments:{profile_id}"
