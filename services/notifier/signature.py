"""Webhook signatures, Stripe's scheme: ``Crmhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The HMAC key is the webhook's secret, the message is ``f"{t}.{body}"`` (the raw request body). Receivers
call :func:`verify_signature` (this module has no dependency beyond the standard library: copy it):

    if not verify_signature(secret, request.headers["Crmhub-Signature"], await request.body()):
        return Response(status_code=400)
    # then de-duplicate on the Idempotency-Key header (the alert id)
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Crmhub-Signature"
DEFAULT_TOLERANCE_S = 300.0


def _mac(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Crmhub-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` carries a ``v1`` signature of ``body`` with ``secret`` and its timestamp is
    within ``tolerance_s`` of ``now`` (default: the current time), which stops replays of old requests.
    Several ``v1`` entries are allowed (a secret being rotated); any one that matches will do."""
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
