"""Abuse on a real API process (a second one on the session hub's servers, with small limits): a write
key over its rate gets 429 with Retry-After, and limits are capped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from crmhub.core.net import free_port
from crmhub.embedded import stop_process
from crmhub.hub import Hub, settings_env
from tests.integration.helpers import now_iso, uid, wait_for

pytestmark = pytest.mark.integration
RATE = 5


@pytest.fixture(scope="module")
def strict_api(hub: Hub) -> Iterator[str]:
    """The URL of an API process allowing RATE requests a second per write key and 1 s for a body."""
    port = free_port()
    env = {**os.environ, **settings_env(hub.settings)}
    env.update(CRMHUB_API_PORT=str(port), CRMHUB_WRITE_KEY_RATE=str(RATE), CRMHUB_BODY_TIMEOUT_S="1")
    env["CRMHUB_INTAKE_JOURNAL"] = "off"  # the hub's own API owns the data dir's journal
    log = open(hub.settings.data_dir / "logs" / "strict-api.log", "ab")  # noqa: SIM115
    # its own process group: stop_process signals the group
    proc = subprocess.Popen(
        [sys.executable, "-m", "crmhub.api"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), 60, what="the strict API")
    yield url
    stop_process(proc)
    log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def track() -> dict[str, object]:
    return {"userId": uid("flood-"), "event": "Product Viewed", "messageId": uid("m-"), "timestamp": now_iso()}


def test_a_write_key_over_its_rate_gets_429_with_retry_after(strict_api: str) -> None:
    with httpx.Client(base_url=strict_api, auth=("test-web-key", ""), timeout=30) as shop:
        answers = [shop.post("/v1/track", json=track()) for _ in range(4 * RATE)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and {a.status_code for a in answers} <= {200, 429}
        assert limited[0].headers["retry-after"] == "1" and limited[0].json()["code"] == "rate_limited"
        time.sleep(1.1)
        assert shop.post("/v1/track", json=track()).status_code == 200  # the next second's budget
    with httpx.Client(base_url=strict_api, auth=("test-pos-key", ""), timeout=30) as till:
        assert till.post("/v1/events", json={"events": []}).status_code == 200  # another key's own budget


@pytest.mark.parametrize(
    "path",
    [
        "/v1/segments/big_spenders/history?limit=100000",
        "/v1/profiles/p-1/events?offset=1000000",
        "/v1/alerts?limit=5000",
    ],
)
def test_limits_are_capped(api: httpx.Client, path: str) -> None:
    answer = api.get(path)
    assert answer.status_code == 422 and answer.json()["detail"]


def test_a_client_sending_its_body_too_slowly_gets_408_as_json(strict_api: str) -> None:
    host, port = strict_api.removeprefix("http://").split(":")
    head = (
        "POST /v1/track HTTP/1.1\r\nHost: shop\r\nAuthorization: Basic dGVzdC1wb3Mta2V5Og==\r\n"  # test-pos-key:
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=15) as slow:
        slow.sendall(head.encode() + b'{"userId": "slow-')  # 17 of the 200 bytes promised, then nothing
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = slow.recv(4096)  # the server answers (and may close); a hang fails on the timeout
            if not chunk:
                break
            answer += chunk
    waited = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert b'"code":"request_timeout"' in rest.replace(b" ", b"") and 0.9 < waited < 10
