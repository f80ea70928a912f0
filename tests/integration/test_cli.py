"""The crmhub command line as a user runs it: publish a file, clear errors, a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from crmhub.core.net import free_port
from crmhub.core.topics import DEADLETTER
from crmhub.hub import Hub
from tests.integration.helpers import now_iso, publish, read_topic, uid, wait_for

pytestmark = pytest.mark.integration
CRMHUB = [sys.executable, "-m", "crmhub.cli"]


@pytest.mark.parametrize("through", ["broker", "journal"])
def test_publish_sends_a_jsonl_file_with_progress(hub: Hub, api: httpx.Client, tmp_path: Path, through: str) -> None:
    """Straight to the broker (external Kafka: --kafka-url), or through the API's intake journal (the
    embedded broker: no --kafka-url), the file's events fill the profile."""
    user = uid("file-")
    lines = [
        {
            "type": "identify",
            "messageId": uid("m-"),
            "userId": user,
            "timestamp": now_iso(),
            "traits": {"email": f"{user}@example.com"},
        },
        *(
            {
                "event_id": uid("e-"),
                "source": "pos",
                "type": "pos.sale",
                "occurred_at": now_iso(),
                "customer_id": user,
                "properties": {"store_id": "s1", "till_id": "t1", "receipt_id": f"r{i}", "total": "10.00"},
            }
            for i in range(5)
        ),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\nnot json at all\n")
    target = (
        ["--kafka-url", hub.settings.bootstrap_servers]
        if through == "broker"
        else ["--api-port", str(hub.settings.api_port), "--api-token", "test-token"]
    )
    result = subprocess.run(
        [*CRMHUB, "publish", str(path), *target],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "published 7 events" in result.stdout
    profile = wait_for(
        lambda: (
            (p := api.get("/v1/profiles", params={"user_id": user})).status_code == 200
            and p.json()["pos_orders"] == 5
            and p.json()
        ),
        what="the file's events folded",
    )
    assert profile["total_spent"] == "50.00"


def test_a_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CRMHUB, "up", "--data-dir", str(tmp_path), "--api-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"port {port} for the HTTP API is already in use" in result.stderr
    assert "--api-port / CRMHUB_API_PORT" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "CRMHUB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(
        [*CRMHUB, "up", "--data-dir", str(tmp_path), "--kafka-port", str(free_port()), "--api-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert result.returncode == 2
    assert "no Redis server answers at" in result.stderr and "Traceback" not in result.stderr


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,pgid"], capture_output=True, text=True).stdout.split("\n")[1:]
    rows = [tuple(map(int, line.split())) for line in out if line.strip()]
    return [p for p, ppid, _ in rows if ppid == pid]


def start_up(data_dir: Path, api_port: int, stdout: int) -> subprocess.Popen[bytes]:
    """``crmhub up`` on free ports, as a user starts it."""
    args = [
        "up",
        "--data-dir",
        str(data_dir),
        "--api-port",
        str(api_port),
        "--kafka-port",
        str(free_port()),
        "--redis-port",
        str(free_port()),
    ]
    return subprocess.Popen([*CRMHUB, *args], stdout=stdout, stderr=subprocess.STDOUT)


def test_up_stops_everything_on_sigterm(tmp_path: Path) -> None:
    api_port = free_port()
    proc = start_up(tmp_path, api_port, subprocess.PIPE)
    try:
        wait_for(lambda: _healthy(api_port), 90, what="crmhub up to serve /health")
        started = children_of(proc.pid)
        assert len(started) >= 7  # tansu, redis, 4 services, api
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = proc.wait(timeout=120)
        print(f"stopped in {time.monotonic() - t0:.1f} s")
        assert code == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "crmhub stopped" in output
        time.sleep(0.5)
        still = [p for p in started if Path(f"/proc/{p}").exists()]
        assert still == [], f"left running: {still}"
    finally:
        if proc.poll() is None:
            proc.kill()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_nothing_outlives_a_killed_supervisor(tmp_path: Path) -> None:
    api_port = free_port()
    proc = start_up(tmp_path, api_port, subprocess.DEVNULL)
    wait_for(lambda: _healthy(api_port), 90, what="crmhub up to serve /health")
    started = children_of(proc.pid)
    proc.kill()  # SIGKILL: no clean-up code runs in the supervisor
    proc.wait(timeout=10)
    wait_for(
        lambda: not [p for p in started if Path(f"/proc/{p}").exists()],
        30,
        what="every server and service to exit with its parent",
    )


def test_deadletters_list_and_replay(hub: Hub, producer: KafkaProducer) -> None:
    marker = uid("dl-")
    publish(
        producer,
        "pos",
        {
            "event_id": marker,
            "source": "pos",
            "type": "pos.sale",
            "occurred_at": now_iso(),
            "customer_id": marker,
            "properties": {"store_id": "s", "till_id": "t", "total": "1"},
        },
    )
    assert read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=1)
    kafka = ["--kafka-url", hub.settings.bootstrap_servers]
    listed = subprocess.run(
        [*CRMHUB, "deadletters", "list", "--source", "pos", "--reason", "field required", "--limit", "500", *kafka],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "300"},  # rich folds tables to 80 columns when not on a terminal
    )
    assert listed.returncode == 0, listed.stderr
    assert "properties.receipt_id" in listed.stdout and "crm.raw.pos.v1" in listed.stdout
    replayed = subprocess.run(
        [*CRMHUB, "deadletters", "replay", "--source", "pos", "--reason", "field required", "--yes", *kafka],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed" in replayed.stdout
    # still invalid: the replayed input is refused again, with the same reason — nothing is lost
    again = read_topic(hub, DEADLETTER, lambda d: marker in d["original"], want=2)
    assert len(again) == 2 and {d["location"] for d in again} == {"properties.receipt_id"}
