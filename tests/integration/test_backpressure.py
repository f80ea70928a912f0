"""A frozen broker (SIGSTOP): the collector never answers 200 for what is not durable and never a bare 500.

With the intake journal (embedded broker) it keeps accepting, durably, until too many inputs wait for the
broker, then answers 503 with ``Retry-After``; once the broker is back, everything it acknowledged flows
through. Without a journal (as with external Kafka) a request the broker does not acknowledge within a
few seconds gets the 503 at once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from crmhub.core.net import free_port
from crmhub.core.settings import Settings
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import api_client, profile_by, uid, wait_for

pytestmark = pytest.mark.integration


def broker_pid(hub: Hub) -> int:
    """The hub's embedded broker: a child of this process whose command line names tansu and its port
    (other hubs of the test session run brokers of their own)."""
    me, port = str(os.getpid()), f"127.0.0.1:{hub.settings.kafka_port}".encode()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == me and b"tansu" in cmdline and port in cmdline:
            return int(stat.parent.name)
    raise AssertionError("no embedded broker found")


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextmanager
def hub_with(tmp_path: Path, **settings: object) -> Iterator[Hub]:
    base = Settings(
        data_dir=tmp_path,
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        write_keys="test-web-key:web",
        api_token="test-token",
        **settings,  # type: ignore[arg-type]
    )
    with running_hub(base, services=("ingest", "profile", "api")) as hub:
        yield hub


def track(user: str, n: int) -> dict[str, object]:
    props = {"order_id": f"{user}-o{n}", "total": "1.00", "currency": "EUR"}
    return {"userId": user, "event": "Order Completed", "messageId": f"{user}-m{n}", "properties": props}


def test_with_the_journal_inputs_are_accepted_until_too_many_wait_then_503(tmp_path: Path) -> None:
    with hub_with(tmp_path, intake_max_unforwarded=20) as hub:
        user = uid("bp")
        answers: list[httpx.Response] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{hub.settings.api_port}", auth=("test-web-key", "")) as c:
            assert c.post("/v1/track", json=track(user, 0)).status_code == 200  # the forwarder is connected
            with frozen(broker_pid(hub)):
                for n in range(1, 60):
                    started = time.monotonic()
                    answers.append(c.post("/v1/track", json=track(user, n), timeout=30))
                    assert time.monotonic() - started < 5, "a bounded answer"
                    if answers[-1].status_code == 503:
                        break
        codes = [a.status_code for a in answers]
        assert codes[-1] == 503 and set(codes[:-1]) == {200} and len(codes) > 15, codes
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].json()["code"] == "unavailable"
        accepted = 1 + len(codes) - 1
        with api_client(hub.settings) as api:
            wait_for(
                lambda: (p := profile_by(api, user_id=user)) and p["order_count"] == accepted,
                60,
                "every accepted order folded after the broker came back",
            )


def test_without_a_journal_an_unacknowledged_request_gets_a_503_within_seconds(tmp_path: Path) -> None:
    with hub_with(tmp_path, intake_journal="off") as hub:
        user = uid("bp")
        with httpx.Client(base_url=f"http://127.0.0.1:{hub.settings.api_port}", auth=("test-web-key", "")) as c:
            assert c.post("/v1/track", json=track(user, 0)).status_code == 200
            with frozen(broker_pid(hub)):
                started = time.monotonic()
                answer = c.post("/v1/track", json=track(user, 1), timeout=60)
                took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] and took < 12
