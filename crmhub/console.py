"""The foreground view of ``crmhub up`` / ``crmhub demo``: what flows, refreshed every second."""

from __future__ import annotations

import time
from typing import Any, get_args

import orjson
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from crmhub.core.errors import ServerUnavailable
from crmhub.core.setting_values import SOURCES
from crmhub.core.settings import Settings
from crmhub.core.stats import RECENT_ALERTS, RECENT_DEADLETTERS, read_counts
from crmhub.embedded import Stopped, shutdown
from crmhub.hub import Child, Hub, running_hub
from schemas.outputs import AlertKind

ROWS: list[tuple[str, str]] = [
    *((f"events in · {s}", f"ingest.in.{s}") for s in SOURCES),
    ("events forwarded", "ingest.out"),
    ("duplicates dropped", "ingest.duplicates"),
    ("dead letters", "ingest.deadletters"),
    ("profiles updated", "profile.updated"),
    ("segment entries", "segmenter.entered"),
    ("segment exits", "segmenter.exited"),
    *((f"alerts · {kind.replace('_', ' ')}", f"notifier.alerts.{kind}") for kind in get_args(AlertKind)),
]


def render(
    counts: dict[str, int],
    rates: dict[str, float],
    alerts: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    elapsed: float,
) -> Group:
    table = Table(title=f"crmhub · {elapsed:,.0f} s", title_justify="left", expand=False)
    table.add_column("flow")
    table.add_column("total", justify="right")
    table.add_column("per s", justify="right")
    for label, key in ROWS:
        table.add_row(label, f"{counts.get(key, 0):,}", f"{rates.get(key, 0.0):,.1f}")
    recent = Table(title="recent alerts", title_justify="left", show_header=False, expand=False)
    for a in alerts[:5]:
        recent.add_row(a["raised_at"][11:19], a["kind"], a["summary"][:90])
    letters = Table(title="recent dead letters", title_justify="left", show_header=False, expand=False)
    for d in dead[:3]:
        letters.add_row(d.get("source", ""), d.get("location", ""), d.get("reason", "")[:90])
    return Group(table, recent, letters)


def plain_line(counts: dict[str, int], elapsed: float) -> str:
    ins = sum(n for name, n in counts.items() if name.startswith("ingest.in."))  # the sources and http
    return (
        f"[{elapsed:6.0f} s] in={ins} forwarded={counts.get('ingest.out', 0)} "
        f"dead={counts.get('ingest.deadletters', 0)} dup={counts.get('ingest.duplicates', 0)} "
        f"profiles={counts.get('profile.updated', 0)} enter={counts.get('segmenter.entered', 0)} "
        f"exit={counts.get('segmenter.exited', 0)} "
        f"alerts={sum(counts.get(f'notifier.alerts.{kind}', 0) for kind in get_args(AlertKind))}"
    )


def banner(console: Console, hub: Hub) -> None:
    s = hub.settings
    api = f"http://127.0.0.1:{s.api_port}"
    console.print(f"[bold green]crmhub is up[/] · Kafka {s.bootstrap_servers} · Redis {s.redis_dsn} · SQL {s.sql_url}")
    console.print(
        f"API {api} (docs {api}/docs) · token [bold]{s.api_token.get_secret_value()}[/] · "
        f"logs {hub.log_dir}/ · Ctrl-C stops"
    )
    console.print(f"dashboard {api}/dashboard (sign in with the token) · crmhub status")
    scaled = {name: n for name, n in s.instances.items() if n > 1}
    if scaled:
        console.print("instances: " + ", ".join(f"{name}={n}" for name, n in scaled.items()) + " (--scale)")


def run_hub(
    settings: Settings,
    rate: float,
    duration: float | None,
    customers: int = 2000,
    bad_fraction: float = 0.0,
    seed: int = 7,
) -> None:
    console = Console()
    try:
        with running_hub(settings, supervise=True) as hub:
            banner(console, hub)
            if rate > 0:
                start_traffic(hub, rate, duration, customers, bad_fraction, seed)
                console.print(
                    f"demo traffic: {rate:g} events/s"
                    + (f" for {duration:g} s" if duration else "")
                    + " (log: traffic.log)"
                )
            watch(hub, console, duration)
    except (KeyboardInterrupt, Stopped):
        pass
    console.print("[bold]crmhub stopped[/]: every process it started has exited.")


def start_traffic(
    hub: Hub, rate: float, duration: float | None, customers: int, bad_fraction: float, seed: int
) -> Child:
    """The demo's synthetic traffic as a child of the hub (log: traffic.log)."""
    args = [f"--rate={rate}", f"--customers={customers}", f"--bad-fraction={bad_fraction}", f"--seed={seed}"]
    return hub.spawn("traffic", ["-m", "crmhub.demo.run", *args, *([f"--duration={duration}"] if duration else [])])


def report_supervision(hub: Hub, console: Console, seen: int) -> int:
    """Print what supervision did since the first ``seen`` notes (restarts); how many notes are printed now."""
    for note in hub.notes[seen:]:
        console.print(f"[yellow]supervisor[/]: {note}")
    return len(hub.notes)


def traffic_done(hub: Hub) -> bool:
    """Whether the demo traffic has finished; raises when supervision gave up on a service or a child that
    is not supervised (the traffic) failed."""
    if hub.failure:
        raise ServerUnavailable(hub.failure)
    done = False
    for child in hub.dead_children():
        if child.supervised:
            continue  # being restarted
        if child.name != "traffic" or child.proc.returncode != 0:
            code = child.proc.returncode
            raise ServerUnavailable(f"{child.name} stopped unexpectedly (code {code}):\n{child.tail()}")
        done = True
    return done


DRAIN_S = 5.0  # after timed traffic ends, let the last events flow through before stopping


def watch(hub: Hub, console: Console, duration: float | None) -> None:
    r = redis.Redis.from_url(hub.settings.redis_dsn)
    started = last_t = time.monotonic()
    last = read_counts(r)
    finished_at: float | None = None
    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
    next_plain = 0.0
    reported = 0
    try:
        if live:
            live.start()
        while not shutdown.wait(1.0):
            now = time.monotonic()
            counts = read_counts(r)
            rates = {k: (v - last.get(k, 0)) / (now - last_t) for k, v in counts.items()}
            last, last_t = counts, now
            if live:
                alerts = [orjson.loads(a) for a in r.lrange(RECENT_ALERTS, 0, 4)]
                dead = [orjson.loads(d) for d in r.lrange(RECENT_DEADLETTERS, 0, 2)]
                live.update(render(counts, rates, alerts, dead, now - started))
            elif now >= next_plain:
                print(plain_line(counts, now - started), flush=True)
                next_plain = now + 5
            reported = report_supervision(hub, console, reported)
            if traffic_done(hub):
                finished_at = finished_at or now
            if duration is not None and finished_at is not None and now - finished_at >= DRAIN_S:
                print(plain_line(counts, now - started), flush=True)
                return
    finally:
        if live:
            live.stop()
