"""Scoped tokens on the running hub: made with the CLI and the API, each route wanting its scope (403
naming it), revocation at once, the bootstrap token (settings) an admin."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import httpx
import orjson
import pytest

from crmhub.hub import Hub
from tests.integration.helpers import now_iso, profile_by, uid, wait_for

pytestmark = pytest.mark.integration
CRMHUB = [sys.executable, "-m", "crmhub.cli"]


def cli(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    where = ["--data-dir", str(hub.settings.data_dir)]
    return subprocess.run([*CRMHUB, *args, *where], capture_output=True, text=True, timeout=60)


def made_with_cli(hub: Hub, name: str, *scopes: str) -> tuple[str, str]:
    result = cli(hub, "tokens", "create", name, *(a for s in scopes for a in ("--scope", s)))
    assert result.returncode == 0, result.stderr
    header, secret = result.stdout.strip().splitlines()
    return header.split()[1], secret


def as_token(hub: Hub, secret: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.Client(base_url=f"http://127.0.0.1:{hub.settings.api_port}", headers=headers, timeout=30)


def test_each_route_wants_its_scope_and_names_the_missing_one(hub: Hub) -> None:
    _, secret = made_with_cli(hub, "ops viewer", "ops:read")
    with as_token(hub, secret) as ops:
        assert ops.get("/v1/segments").status_code == 200
        assert ops.get("/v1/stats").status_code == 200
        refused = {
            "profiles:read": ops.get("/v1/profiles", params={"email": "ann@example.com"}),
            "profiles:erase": ops.delete("/v1/profiles/p-none"),
            "segments:write": ops.post("/v1/segments", json={"name": "x", "condition": "total_spent > 1"}),
            "admin": ops.get("/v1/tokens"),
            "events:write": ops.post("/v1/raw/pos", content=b"{}"),
        }
    for scope, response in refused.items():
        assert response.status_code == 403, (scope, response.text)
        assert scope in response.json()["detail"]


def test_an_eraser_erases_but_cannot_read(hub: Hub) -> None:
    _, secret = made_with_cli(hub, "dpo robot", "profiles:erase")
    with as_token(hub, secret) as eraser:
        assert eraser.delete("/v1/profiles/p-nobody").status_code == 404  # allowed: nobody to erase
        assert eraser.get("/v1/profiles/p-nobody/export").status_code == 403


def test_a_revoked_token_is_refused_at_once_and_listed_as_revoked(hub: Hub) -> None:
    token_id, secret = made_with_cli(hub, "leaver", "ops:read")
    with as_token(hub, secret) as leaver:
        assert leaver.get("/v1/segments").status_code == 200
        assert cli(hub, "tokens", "revoke", token_id).returncode == 0
        assert leaver.get("/v1/segments").status_code == 401
    listed = cli(hub, "tokens", "list")
    line = next(line for line in listed.stdout.splitlines() if token_id in line)
    assert "leaver" in line and "20" in line.split("ops:read")[1]  # a revocation time
    assert secret not in listed.stdout
    again = cli(hub, "tokens", "revoke", token_id)
    assert again.returncode == 2 and "no live token" in again.stderr


def test_the_bootstrap_token_makes_and_revokes_tokens_through_the_api(hub: Hub, api: httpx.Client) -> None:
    made = api.post("/v1/tokens", json={"name": "crm team", "scopes": ["profiles:read", "ops:read"]})
    assert made.status_code == 201
    token_id, secret = made.json()["token_id"], made.json()["token"]
    assert secret not in api.get("/v1/tokens").text and token_id in api.get("/v1/tokens").text
    with as_token(hub, secret) as team:
        assert team.get("/v1/profiles/p-nobody").status_code == 404  # allowed, nobody there
        assert api.delete(f"/v1/tokens/{token_id}").status_code == 204
        assert team.get("/v1/profiles/p-nobody").status_code == 401
    bad = api.post("/v1/tokens", json={"name": "x", "scopes": ["profiles:write"]})
    assert bad.status_code == 422 and "profiles:write" in bad.text


def test_no_token_or_a_wrong_one_is_401(hub: Hub) -> None:
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    assert httpx.get(f"{base}/v1/segments", timeout=10).status_code == 401
    with as_token(hub, "crm_0000_wrong") as wrong:
        assert wrong.get("/v1/segments").status_code == 401


@contextlib.contextmanager
def signed_in(hub: Hub, secret: str) -> Iterator[httpx.Client]:
    """A client like a browser: signed in once, the session cookie in its jar, no token sent."""
    with httpx.Client(base_url=f"http://127.0.0.1:{hub.settings.api_port}", timeout=30) as browser:
        answer = browser.post("/v1/session", json={"token": secret})
        assert answer.status_code == 200, answer.text
        yield browser


def test_a_session_cookie_is_httponly_strict_and_holds_no_token(hub: Hub) -> None:
    _, secret = made_with_cli(hub, "night shift", "ops:read")
    with signed_in(hub, secret) as browser:
        (cookie,) = browser.cookies.jar
        set_cookie = browser.post("/v1/session", json={"token": secret}).headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        assert secret not in cookie.value and secret not in set_cookie
        assert browser.get("/v1/session").json()["scopes"] == ["ops:read"]
        assert browser.get("/v1/stats").status_code == 200
        assert browser.get("/v1/profiles/p-nobody").status_code == 403  # the token's scopes, no more
        assert browser.delete("/v1/session").status_code == 204
        assert browser.get("/v1/stats").status_code == 401


def test_a_session_reads_only_and_ends_with_its_token(hub: Hub) -> None:
    token_id, secret = made_with_cli(hub, "admin on call", "admin")
    with signed_in(hub, secret) as browser:
        assert browser.get("/v1/tokens").status_code == 200
        refused = browser.post("/v1/tokens", json={"name": "csrf", "scopes": ["admin"]})
        assert refused.status_code == 401  # a cookie never changes anything: no cross-site forgery
        assert cli(hub, "tokens", "revoke", token_id).returncode == 0
        assert browser.get("/v1/tokens").status_code == 401


def test_signing_in_wants_ops_read(hub: Hub) -> None:
    _, secret = made_with_cli(hub, "eraser", "profiles:erase")
    base = f"http://127.0.0.1:{hub.settings.api_port}"
    refused = httpx.post(f"{base}/v1/session", json={"token": secret}, timeout=10)
    assert refused.status_code == 403 and "ops:read" in refused.json()["detail"] and "set-cookie" not in refused.headers
    assert httpx.post(f"{base}/v1/session", json={"token": "nope"}, timeout=10).status_code == 401


def test_the_ops_views_show_personal_data_only_to_profiles_read(hub: Hub, api: httpx.Client) -> None:
    bad = api.post("/v1/events", auth=("test-pos-key", ""), content=b'{"email": "ann.secret@example.com", "oops')
    assert bad.status_code == 400
    _, ops_only = made_with_cli(hub, "ops only", "ops:read")
    with signed_in(hub, ops_only) as browser:
        letters = browser.get("/v1/stats").json()["recent_deadletters"]
        snap = browser.get("/v1/ops", params={"over": 0.1}).json()
    assert letters and all("original" not in d and d["reason"] for d in letters)
    assert all("original" not in d for d in snap["deadletters"])
    assert all("summary" not in a and "profile_id" not in a for a in snap["alerts"])
    assert "ann.secret" not in str(letters) + str(snap)
    full = api.get("/v1/stats").json()["recent_deadletters"]
    assert any("ann.secret" in d["original"] for d in full)


def identified(api: httpx.Client, email: str) -> str:
    """A new customer with this e-mail; their profile id once folded."""
    user = uid("audit-")
    message = {"userId": user, "messageId": uid("m-"), "timestamp": now_iso(), "traits": {"email": email}}
    assert api.post("/v1/identify", auth=("test-web-key", ""), json=message).status_code == 200
    found = wait_for(lambda: profile_by(api, user_id=user), 60, what="the profile")
    return str(found["profile_id"])


def test_reads_exports_erasures_and_token_changes_are_audited_without_personal_data(
    hub: Hub, api: httpx.Client
) -> None:
    email = f"{uid('dora-')}@example.com"
    profile_id = identified(api, email)
    token_id, secret = made_with_cli(hub, "support agent", "profiles:read", "profiles:erase")
    with as_token(hub, secret) as agent:
        read = agent.get("/v1/profiles", params={"email": email})
        export = agent.get(f"/v1/profiles/{profile_id}/export")
        erase = agent.delete(f"/v1/profiles/{profile_id}")
    assert (read.status_code, export.status_code, erase.status_code) == (200, 200, 204)
    entries = api.get("/v1/audit", params={"profile_id": profile_id}).json()["entries"]
    mine = [(e["token_id"], e["action"], e["request_id"]) for e in entries if e["token_id"] == token_id]
    assert mine == [
        (token_id, "profile.read", read.headers["x-request-id"]),
        (token_id, "profile.export", export.headers["x-request-id"]),
        (token_id, "profile.erase", erase.headers["x-request-id"]),
    ]
    assert email not in str(entries) and secret not in str(entries)
    made = [e for e in api.get("/v1/audit").json()["entries"] if e["action"] == "token.create"]
    assert any(token_id in e["detail"] and e["token_id"] == "cli" for e in made)


def test_the_cli_exports_the_audit_log_as_json_lines(hub: Hub, api: httpx.Client) -> None:
    token_id, _ = made_with_cli(hub, "to be revoked", "ops:read")
    assert cli(hub, "tokens", "revoke", token_id).returncode == 0
    result = cli(hub, "audit", "export")
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert {"id", "at", "token_id", "action", "profile_id", "request_id", "detail"} <= set(lines[0])
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    assert ("cli", "token.revoke", token_id) in {(e["token_id"], e["action"], e["detail"]) for e in lines}
    again = cli(hub, "audit", "export", "--after", str(lines[-1]["id"])).stdout.splitlines()
    (export,) = (orjson.loads(line) for line in again)  # the first export, recorded once it was done
    assert (export["token_id"], export["action"]) == ("cli", "audit.read")


def test_only_admin_reads_the_audit_log(hub: Hub) -> None:
    _, secret = made_with_cli(hub, "reader", "profiles:read", "ops:read")
    with as_token(hub, secret) as reader:
        refused = reader.get("/v1/audit")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
