"""Ops on a real hub with demo traffic: /metrics of every service, /ready, the dashboard in headless
Chromium (Debian's, driven by Playwright), ``crmhub status``, the Grafana dashboard's queries, and JSON
logs without personal data."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from crmhub.api import create_app
from crmhub.console import start_traffic
from crmhub.core import kafka as kafka_io
from crmhub.core.metrics import samples
from crmhub.core.net import free_port
from crmhub.core.runtime import record_consumer
from crmhub.core.settings import Settings
from crmhub.embedded import embedded_kafka
from crmhub.hub import Hub, running_hub
from tests.integration.helpers import uid, wait_for

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).parents[2]
GRAFANA = REPO / "ops" / "grafana" / "crmhub.json"
ARTIFACTS = Path(os.environ.get("CRMHUB_ARTIFACTS", REPO / "artifacts"))  # ignored by git
TOKEN = "ops-token"
SERVICES = ("ingest", "profile", "segmenter", "notifier")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub of its own (JSON logs) with the demo's traffic, a share of it invalid, carts abandoned fast."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("ops"),
        kafka_port=free_port(),
        redis_port=free_port(),
        api_port=free_port(),
        api_token=TOKEN,
        abandonment_delay_s=3.0,
        log_format="json",
    )
    with running_hub(settings) as hub:
        start_traffic(hub, rate=60, duration=None, customers=300, bad_fraction=0.05, seed=11)
        yield hub


@pytest.fixture(scope="module")
def api(demo: Hub) -> Iterator[httpx.Client]:
    url = f"http://127.0.0.1:{demo.settings.api_port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=15) as client:
        yield client


def metric_samples(api: httpx.Client) -> list[tuple[str, dict[str, str], float]]:
    text = api.get("/metrics").text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def by_name(samples: list[tuple[str, dict[str, str], float]], name: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for n, labels, value in samples if n == name]


def test_metrics_show_every_service_and_what_it_drops(api: httpx.Client) -> None:
    def complete() -> list[tuple[str, dict[str, str], float]] | None:
        samples = metric_samples(api)
        alerts = by_name(samples, "crmhub_alerts_raised_total")
        deliveries = by_name(samples, "crmhub_alert_deliveries_total")
        seen = {labels["service"] for labels, v in by_name(samples, "crmhub_events_consumed_total") if v > 0}
        ready = (
            seen == set(SERVICES)
            and alerts
            and any(labels == {"sink": "topic", "status": "delivered"} for labels, _ in deliveries)
            and {labels["service"] for labels, _ in by_name(samples, "crmhub_deadletters_total")}
            >= {"ingest", "collector"}
            and by_name(samples, "crmhub_segment_changes_total")
            and {labels["service"] for labels, _ in by_name(samples, "crmhub_consumer_lag")} == set(SERVICES)
            # each service meters its memory beside its lag; CI once read the lag of all four, the memory of three
            and {labels["service"] for labels, _ in by_name(samples, "crmhub_process_resident_memory_bytes")}
            == set(SERVICES)
        )
        return samples if ready else None

    samples = wait_for(
        complete, 120, what="metrics of all four services (lag and memory too), dead letters, segments, alerts"
    )
    assert {labels["topic"] for labels, _ in by_name(samples, "crmhub_consumer_lag")} >= {
        "crm.raw.web.v1",
        "crm.events.v1",
        "crm.profile-changes.v1",
    }
    memory = dict((labels["service"], v) for labels, v in by_name(samples, "crmhub_process_resident_memory_bytes"))
    assert set(memory) == set(SERVICES) and all(v > 10 * 2**20 for v in memory.values())
    reasons = {labels["reason"] for labels, _ in by_name(samples, "crmhub_deadletters_total")}
    assert all(len(r) < 60 for r in reasons), reasons  # a few kinds, not the free text of each input
    refused = {
        labels["reason"]
        for labels, _ in by_name(samples, "crmhub_deadletters_total")
        if labels["service"] == "collector"
    }
    assert "invalid JSON" in refused  # the demo's broken Segment batches, refused by the HTTP collector
    latency = {labels["service"]: v for labels, v in by_name(samples, "crmhub_event_latency_seconds_count")}
    assert latency["ingest"] > 0 and latency["profile"] > 0
    produced = {(labels["service"], labels["topic"]) for labels, _ in by_name(samples, "crmhub_events_produced_total")}
    assert {
        ("ingest", "crm.events.v1"),
        ("ingest", "crm.deadletter.v1"),
        ("profile", "crm.profile-changes.v1"),
    } <= produced


def test_lag_is_the_fetch_high_watermark_minus_the_position(demo: Hub) -> None:
    topic = f"ops.lag.{uid()}"
    admin = KafkaAdminClient(bootstrap_servers=demo.settings.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = kafka_io.producer(demo.settings)
    for i in range(100):
        producer.send(topic, value=b"%d" % i)  # few batches: Tansu's end offset says far less than 100
    producer.flush()
    producer.close()
    consumer = kafka_io.consumer(demo.settings, None)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    try:
        taken = wait_for(lambda: sum(len(r) for r in consumer.poll(timeout_ms=500, max_records=30).values()), 20)
        record_consumer("lag-test", consumer)
    finally:
        consumer.close()
    lags = {
        labels["topic"]: v for labels, v in samples(REGISTRY, "crmhub_consumer_lag") if labels["service"] == "lag-test"
    }
    assert lags == {topic: 100 - taken}


def test_ready_answers_when_every_server_does(api: httpx.Client) -> None:
    response = api.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"broker": "ok", "redis": "ok", "sql": "ok"}
    assert api.get("/health").status_code == 200


def test_ready_names_the_servers_that_are_down(tmp_path: Path) -> None:
    # an API on a broker of its own, with a Redis URL nothing listens on; then the broker stops too
    with contextlib.ExitStack() as stack:
        with embedded_kafka(free_port(), tmp_path / "tansu.log") as broker:
            settings = Settings(
                data_dir=tmp_path, kafka_url=broker.address, redis_url=f"redis://127.0.0.1:{free_port()}/0"
            )
            client = stack.enter_context(TestClient(create_app(settings)))
            redis_down = client.get("/ready")
        both_down = client.get("/ready")
    assert redis_down.status_code == 503
    assert redis_down.json()["status"] == "not ready: redis down"
    checks = redis_down.json()["checks"]
    assert checks["broker"] == "ok" and checks["sql"] == "ok" and "Connection" in checks["redis"]
    assert both_down.status_code == 503
    assert both_down.json()["status"] == "not ready: broker, redis down"
    assert both_down.json()["checks"]["sql"] == "ok"


def test_the_stream_needs_a_session_and_sends_snapshots(demo: Hub) -> None:
    base = f"http://127.0.0.1:{demo.settings.api_port}"
    assert httpx.get(f"{base}/v1/stream", timeout=5).status_code == 401
    assert httpx.get(f"{base}/v1/stream", params={"token": TOKEN}, timeout=5).status_code == 401  # not in URLs
    with httpx.Client(base_url=base, timeout=15) as browser:
        assert browser.post("/v1/session", json={"token": TOKEN}).status_code == 200
        with browser.stream("GET", "/v1/stream", params={"interval": 0.2}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = (line for line in response.iter_lines() if line.startswith("data: "))
            first, second = (orjson.loads(next(lines)[len("data: ") :]) for _ in range(2))
    assert second["t"] > first["t"]
    assert set(second["rates"]) == {"sources", "services"}
    assert {s["name"] for s in second["segments"]} >= {"big_spenders", "open_carts"}


def test_the_dashboard_shows_live_figures_and_alerts_in_chromium(demo: Hub, api: httpx.Client) -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # the page has an alert to show once one was raised (complaints come within seconds)
    wait_for(lambda: api.get("/v1/alerts").json(), 90, what="a first alert")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"http://127.0.0.1:{demo.settings.api_port}/")  # / leads to /dashboard
            assert page.url.endswith("/dashboard")
            page.fill("#token", TOKEN)  # signs in once: a session cookie from then on
            page.click("#login-form button")
            page.wait_for_function("document.getElementById('state').textContent.startsWith('live')", timeout=20_000)
            first = int(page.text_content("#in-total").replace(",", ""))  # type: ignore[union-attr]
            page.wait_for_function(
                f"Number(document.getElementById('in-total').textContent.replace(/,/g, '')) > {first}",
                timeout=20_000,
            )
            page.wait_for_selector("#alerts tbody tr td.wrap", timeout=30_000)  # an alert's summary
            assert page.locator("#alerts tbody tr").count() >= 1
            assert "delivered" in page.text_content("#alerts tbody")  # type: ignore[operator]
            page.wait_for_selector("#lag tbody tr td.n", timeout=20_000)
            page.wait_for_selector("#deadletters tbody tr.click", timeout=60_000)
            page.click("#deadletters tbody tr.click")
            record = json.loads(page.text_content("#deadletter") or "{}")
            assert record["reason"] and record["source"]
            page.wait_for_function("document.querySelectorAll('#segments .bar').length > 0")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"  # for a person to look at
            page.screenshot(path=str(shot), full_page=True)
            (cookie,) = page.context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
            page.reload()  # the session holds: no second sign-in
            page.wait_for_function("document.getElementById('state').textContent.startsWith('live')", timeout=20_000)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_status_prints_the_dashboard_figures(demo: Hub) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "crmhub.cli", "status", "--api-port", str(demo.settings.api_port), "--api-token", TOKEN],
        capture_output=True,
        text=True,
        timeout=180,  # a start-up and a few API calls: 60 s was not enough beside a full suite on a slow machine
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "crmhub · ready" in out
    for figure in ("in · web", "service · profile", "consumer lag", "crm.events.v1", "big_spenders", "memory"):
        assert figure in out, figure
    wrong = subprocess.run(
        [sys.executable, "-m", "crmhub.cli", "status", "--api-port", str(demo.settings.api_port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "refused the token" in wrong.stderr


def test_every_metric_the_grafana_dashboard_queries_exists(api: httpx.Client) -> None:
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bcrmhub_[a-z_]+", expr)}
    assert len(queried) >= 10
    wait_for(lambda: any(n == "crmhub_alerts_raised_total" for n, _, _ in metric_samples(api)), 90, what="an alert")
    exposed = {name for name, _, _ in metric_samples(api)}
    assert queried <= exposed, sorted(queried - exposed)


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[a-z]{2,}", re.IGNORECASE)
PHONE = re.compile(r"\+\d{9,}")


def test_logs_are_json_with_event_ids_and_no_personal_data(demo: Hub, api: httpx.Client) -> None:
    wait_for(lambda: api.get("/v1/alerts", params={"kind": "complaint"}).json(), 90, what="a complaint alert")
    complaints = [a["details"] for a in api.get("/v1/alerts", params={"kind": "complaint"}).json()]
    handles = {c["handle"].lstrip("@") for c in complaints if "handle" in c}  # cases (phone, e-mail …) have none
    quoted = {c["text"][:40] for c in complaints} | handles
    lines = [
        line
        for service in (*SERVICES, "api", "traffic")
        for line in (demo.log_dir / f"{service}.log").read_text().splitlines()
        if line.strip()
    ]
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {d["service"] for d in docs} >= set(SERVICES)
    # the metrics never get in the way (the Kafka clients' own connection noise aside)
    errors = [
        d for d in docs if d["level"] in ("ERROR", "CRITICAL") and not d["logger"].startswith(("kafka", "aiokafka"))
    ]
    assert not errors, errors
    dead = [d for d in docs if d["msg"].startswith("dead letter")]
    assert dead and all({"topic", "partition", "offset", "reason"} <= set(d) for d in dead)
    assert any(d.get("event_id") for d in dead)
    assert any(d.get("alert_id") for d in docs if d["service"] == "notifier")
    text = "\n".join(lines)
    assert not EMAIL.search(text), EMAIL.search(text)
    assert not PHONE.search(text), PHONE.search(text)
    assert quoted and not [q for q in quoted if q in text]
