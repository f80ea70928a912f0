"""Identifiers at rest on the running hub: Redis holds keyed hashes only; an index an older crmhub wrote
in clear text is rebuilt hashed; an erasure leaves no clear identifier in Redis or in the suppression list."""

from __future__ import annotations

import httpx
import pytest
import redis
from sqlalchemy import create_engine, select

from crmhub.core.pseudonyms import identity_key, pseudonym
from crmhub.hub import Hub
from crmhub.identity_index import FORMAT, FORMAT_KEY
from schemas.tables import suppressed_identifiers
from services.ingest.state import owned_ids, owned_key
from tests.integration.helpers import id_key, identity_rebuild, now_iso, profile_by, uid, wait_for

pytestmark = pytest.mark.integration


def everything_in(r: redis.Redis) -> str:
    """Every key of Redis, every member of its sets and every field of its hashes, as one text to search."""
    keys = list(r.scan_iter(count=1000))
    members = [m for k in keys if r.type(k) == b"set" for m in r.smembers(k)]
    members += [f for k in keys if r.type(k) == b"hash" for f in r.hkeys(k)]
    return b"\n".join(keys + members).decode(errors="replace")


def identify(api: httpx.Client, user: str, email: str, phone: str) -> str:
    traits = {"email": email, "phone": phone}
    message = {"userId": user, "messageId": uid("m-"), "timestamp": now_iso(), "traits": traits}
    assert api.post("/v1/identify", auth=("test-web-key", ""), json=message).status_code == 200
    return str(wait_for(lambda: profile_by(api, email=email), 60, what="the profile")["profile_id"])


def test_redis_keys_hold_no_clear_identifier_and_erasure_keeps_none(hub: Hub, api: httpx.Client) -> None:
    user, email, phone = uid("pseudo-"), f"{uid('zoe-')}@example.com", "+44 20 7946 0958"
    profile_id = identify(api, user, email, phone)
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    assert r.get(id_key(hub, "email", email)) == profile_id.encode()
    held = everything_in(r)
    assert email not in held and user not in held and "2079460958" not in held
    assert api.delete(f"/v1/profiles/{profile_id}").status_code == 204
    assert email not in everything_in(r)
    with create_engine(f"sqlite:///{hub.settings.sqlite_path}").connect() as conn:
        kept = [value for (value,) in conn.execute(select(suppressed_identifiers.c.value))]
    assert kept and all(value.startswith("h1:") for value in kept) and email not in str(kept)


def test_an_index_in_clear_text_is_rebuilt_hashed(hub: Hub, api: httpx.Client) -> None:
    user, email = uid("legacy-"), f"{uid('old-')}@example.com"
    profile_id = identify(api, user, email, "+44 20 7946 0000")
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    r.set(f"crmhub:id:email:{email}", profile_id)  # what an older crmhub wrote
    r.sadd(f"crmhub:profile-ids:{profile_id}:email", email)  # its reverse index: a set per kind
    r.delete(id_key(hub, "email", email), FORMAT_KEY)
    output = identity_rebuild(hub)
    assert "dropped 2 clear-text identifiers" in output
    assert email not in everything_in(r)
    assert r.get(id_key(hub, "email", email)) == profile_id.encode()
    assert r.get(FORMAT_KEY) == FORMAT.encode()
    hashed = pseudonym(identity_key(hub.settings), "email", email)
    assert ("email", hashed) in owned_ids(r.hkeys(owned_key(profile_id)))  # the set of before, now a hash
    assert not list(r.scan_iter(f"crmhub:profile-ids:{profile_id}:*"))
