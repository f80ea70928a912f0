"""Webhook signatures: Stripe's scheme, the tolerance window, secret rotation."""

from __future__ import annotations

import hashlib
import hmac

from services.notifier.signature import signature_header, verify_signature

BODY = b'{"alert_id":"complaint:abc"}'
T = 1_741_953_600


def test_the_header_is_t_and_an_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"whsec", f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature_header("whsec", BODY, T) == f"t={T},v1={expected}"


def test_a_signature_verifies_with_the_same_secret_and_body_in_time() -> None:
    header = signature_header("whsec", BODY, T)
    assert verify_signature("whsec", header, BODY, now=T + 10)
    assert verify_signature(b"whsec", header, BODY, now=T - 10)


def test_a_changed_body_another_secret_or_an_old_request_fails() -> None:
    header = signature_header("whsec", BODY, T)
    assert not verify_signature("whsec", header, BODY + b" ", now=T)
    assert not verify_signature("other", header, BODY, now=T)
    assert not verify_signature("whsec", header, BODY, now=T + 301)
    assert verify_signature("whsec", header, BODY, tolerance_s=600, now=T + 301)


def test_malformed_headers_fail() -> None:
    v1 = signature_header("whsec", BODY, T).split(",")[1]
    for header in (None, "", v1, f"t={T}", f"t=soon,{v1}", "garbage"):
        assert not verify_signature("whsec", header, BODY, now=T)


def test_any_of_several_v1_signatures_will_do() -> None:
    new = signature_header("new", BODY, T).split(",")[1]
    old = signature_header("old", BODY, T)
    assert verify_signature("new", f"{old},{new}", BODY, now=T)
    assert verify_signature("old", f"{old},{new}", BODY, now=T)
