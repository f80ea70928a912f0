"""The segment export on the session hub: a segment's members with the contact points they consented
to, streamed as CSV and JSON Lines; an erased member left out; 404; the audit entries."""

from __future__ import annotations

import csv
import io

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.helpers import now_iso, profile_by, publish, segment_track, uid, wait_for

pytestmark = pytest.mark.integration


def signed_up(producer: KafkaProducer, api: httpx.Client, tag: str, consent: str | None) -> str:
    """A customer with an e-mail address, the trait ``export == tag`` and ``consent`` (a channel, or none);
    the profile id once folded."""
    anon, user = uid("a-"), uid("x-")
    identify = {"type": "identify", "messageId": uid("m-"), "anonymousId": anon, "userId": user,
                "timestamp": now_iso(), "traits": {"email": f"{user}@example.com", "export": tag}}  # fmt: skip
    consents = [segment_track("consent.granted", {"channel": consent}, anon, user)] if consent else []
    publish(producer, "web", identify, *consents)
    folded = wait_for(lambda: profile_by(api, user_id=user), what=user)
    if consent:
        folded = wait_for(lambda: (p := profile_by(api, user_id=user)) and p["consent"].get(consent) and p, what=user)
    return str(folded["profile_id"])


def test_an_export_streams_the_members_with_their_consented_contact_points(
    api: httpx.Client, producer: KafkaProducer
) -> None:
    tag, name = uid(), uid("export_")
    assert api.post("/v1/segments", json={"name": name, "condition": f'traits["export"] == "{tag}"'}).status_code == 201
    consented, silent, erased = (signed_up(producer, api, tag, c) for c in ("email", None, "email"))
    outsider = signed_up(producer, api, "other", "email")
    wait_for(lambda: api.get(f"/v1/segments/{name}").json()["size"] == 3, what="the segment's three members")
    emails = {pid: profile["identifiers"]["email"][0] for pid in (consented, erased)
              if (profile := api.get(f"/v1/profiles/{pid}").json())}  # fmt: skip
    assert api.delete(f"/v1/profiles/{erased}").status_code in (200, 202, 204)

    as_csv = api.get(f"/v1/segments/{name}/export")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows == sorted(rows, key=lambda r: r["profile_id"])
    assert {r["profile_id"]: r["email"] for r in rows} == {consented: emails[consented], silent: ""}
    as_jsonl = api.get(f"/v1/segments/{name}/export", params={"format": "jsonl"})
    assert as_jsonl.headers["content-disposition"] == f'attachment; filename="{name}.jsonl"'
    lines = {d["profile_id"]: d["contacts"] for d in map(orjson.loads, as_jsonl.text.splitlines())}
    assert lines == {consented: {"email": emails[consented]}, silent: {}} and outsider not in lines

    assert api.get("/v1/segments/no_such_segment/export").status_code == 404
    assert api.get(f"/v1/segments/{name}/export", params={"format": "xml"}).status_code == 422
    audit = api.get("/v1/audit", params={"limit": 1000}).json()["entries"]
    assert [e["detail"] for e in audit if e["action"] == "segment.export"][-2:] == [
        f"{name} as csv",
        f"{name} as jsonl",
    ]
