"""Redis keys of the segment membership view (written by the segmenter, read by the API)."""

MEMBERS_PREFIX = "crmhub:segment:"
