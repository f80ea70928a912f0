"""``crmhub status``: the dashboard's figures in the terminal, from a running hub's ``GET /v1/ops``."""

from __future__ import annotations

from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from crmhub.core.errors import ServerUnavailable
from crmhub.core.settings import Settings
from crmhub.embedded import shutdown
from crmhub.ops import lag_by_topic


def fetch(settings: Settings, over_s: float) -> dict[str, Any]:
    """One snapshot with rates over ``over_s`` seconds, and the readiness of the servers."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # bound to all: ask loopback
    url = f"http://{host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=over_s + 10) as client:
            response = client.get("/v1/ops", params={"over": over_s})
            ready = client.get("/ready").json()
    except httpx.HTTPError as exc:
        raise ServerUnavailable(f"no crmhub API answers at {url} (--api-port / CRMHUB_API_PORT): {exc}") from exc
    if response.status_code == 401:
        raise ServerUnavailable(f"the API at {url} refused the token (--api-token / CRMHUB_API_TOKEN)")
    response.raise_for_status()
    return {**response.json(), "ready": ready}


def render(snap: dict[str, Any]) -> Group:  # noqa: C901
    flows = Table(title=f"crmhub · {snap['ready']['status']} · {snap['at'][:19]}Z", title_justify="left")
    for column in ("flow", "total", "per s"):
        flows.add_column(column, justify="left" if column == "flow" else "right")
    for group, label in (("sources", "in"), ("services", "service")):
        for name, total in snap["flows"][group].items():
            flows.add_row(f"{label} · {name}", f"{total:,}", f"{snap['rates'][group].get(name, 0.0):,.1f}")
    lag = Table(title="consumer lag (records behind)", title_justify="left")
    for column in ("service", "topic", "total", "per partition"):
        lag.add_column(column, justify="right" if column == "total" else "left")
    for (service, topic), parts in lag_by_topic(snap["lag"]).items():
        detail = " ".join(f"p{p}:{n:,}" for p, n in parts.items())
        lag.add_row(service, topic, f"{sum(parts.values()):,}", detail)
    reasons = Table(title="dead letters by reason", title_justify="left")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for reason, n in snap["deadletter_reasons"].items():
        reasons.add_row(reason, f"{n:,}")
    segments = Table(title="segments", title_justify="left")
    segments.add_column("segment")
    segments.add_column("profiles", justify="right")
    for seg in snap["segments"]:
        segments.add_row(seg["name"], f"{seg['size']:,}")
    alerts = Table(title="recent alerts", title_justify="left")
    for column in ("raised", "kind", "summary", "delivery"):
        alerts.add_column(column)
    for a in snap["alerts"][:5]:
        delivery = ", ".join(f"{sink}: {status}" for sink, status in a["delivery"].items())
        alerts.add_row(a["raised_at"][11:19], a["kind"], a["summary"][:70], delivery)
    memory = Table(title="processes: memory and restarts", title_justify="left")
    memory.add_column("process")
    memory.add_column("resident", justify="right")
    memory.add_column("restarts", justify="right")
    for process in sorted(snap["memory"].keys() | snap["restarts"].keys()):
        rss = snap["memory"].get(process)
        resident = f"{rss / 2**20:,.0f} MiB" if rss is not None else "-"
        memory.add_row(process, resident, f"{snap['restarts'].get(process, 0):,}")
    return Group(flows, lag, reasons, segments, alerts, memory)


def show(settings: Settings, watch: bool, interval_s: float) -> None:
    console = Console()
    if not watch:
        console.print(render(fetch(settings, interval_s)))
        return
    with Live(console=console, refresh_per_second=1) as live:
        while not shutdown.is_set():
            live.update(render(fetch(settings, interval_s)))
