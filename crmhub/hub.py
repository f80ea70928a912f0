"""Runs the whole hub: embedded servers (unless external URLs are set), topics, the four services, the API.

Each service is its own process (``python -m services.<name>``), configured only through ``CRMHUB_*``
environment variables, exactly as in docker-compose; their output goes to ``<data_dir>/logs/``. With
supervision on (``crmhub up``/``demo``), a service or the API that exits is started again (see
:mod:`crmhub.supervision`); the embedded Redis too, on the same data (its append-only file); the broker
never: it keeps topics in memory only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from crmhub.core import kafka as kafka_io
from crmhub.core.errors import ServerUnavailable
from crmhub.core.metrics import MULTIPROC_ENV
from crmhub.core.settings import Settings
from crmhub.core.stats import RESTARTS_PREFIX, add_counts
from crmhub.embedded import (
    EmbeddedRedis,
    check_port_free,
    check_stop,
    embedded_kafka,
    embedded_redis,
    spawn,
    stop_process,
)
from crmhub.identity_index import upgrade_if_needed
from crmhub.supervision import RestartPolicy

log = logging.getLogger("crmhub.hub")

SERVICES: dict[str, list[str]] = {
    "ingest": ["-m", "services.ingest"],
    "profile": ["-m", "services.profile"],
    "segmenter": ["-m", "services.segmenter"],
    "notifier": ["-m", "services.notifier"],
    "api": ["-m", "crmhub.api"],
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``CRMHUB_*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CRMHUB_{name.upper()}"] = str(value)
    return env


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    supervised: bool = False
    crashes: list[float] = field(default_factory=list)  # monotonic times of unexpected exits
    restart_at: float | None = None  # when a pending restart is due

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Hub:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    failure: str | None = None  # set when supervision gave up on a child: the hub must stop
    notes: list[str] = field(default_factory=list)  # what supervision did, for the console
    redis_server: EmbeddedRedis | None = None  # the embedded Redis, restarted when it exits
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    @property
    def metrics_dir(self) -> Path:
        """Where every child writes its Prometheus metrics; the API adds them up (crmhub.core.metrics)."""
        return self.settings.data_dir / "metrics"

    def _start(self, name: str, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **settings_env(self.settings),
            "PYTHONUNBUFFERED": "1",
            MULTIPROC_ENV: str(self.metrics_dir),
        }
        return spawn([sys.executable, *args], log_path, env)

    def spawn(self, name: str, args: list[str], supervised: bool = False) -> Child:
        """Start a child; a ``supervised`` one is started again whenever it exits (see :meth:`supervise`)."""
        log_path = self.log_dir / f"{name}.log"
        child = Child(name, self._start(name, args, log_path), log_path, args, supervised)
        with self._lock:
            self.children.append(child)
        return child

    def supervise(self, now: float) -> None:
        """One round of supervision at monotonic time ``now``: note the supervised children that exited,
        restart those whose backoff is over, and give up (``failure``) on one that keeps crashing."""
        with self._lock:
            self._supervise_redis()
            for child in self.children:
                if child.supervised and self.failure is None:
                    self._supervise_child(child, now)

    def _supervise_redis(self) -> None:
        """The embedded Redis is started again at once, on the same data: its append-only file holds every
        write it acknowledged, so the services (which retry while it is away) go on where they were."""
        if self.redis_server is None or not self.redis_server.exited():
            return
        self._note(f"redis exited (code {self.redis_server.proc and self.redis_server.proc.returncode}); restarting")
        try:
            self.redis_server.restart()
        except ServerUnavailable as exc:
            self.failure = f"the embedded Redis server could not be restarted: {exc}"
            return
        self._count_restart("redis")
        self._note("redis restarted")

    def _supervise_child(self, child: Child, now: float) -> None:
        if child.restart_at is None and child.proc.poll() is not None:
            child.crashes.append(now)
            delay = self.policy.delay_after(child.crashes, now)
            if delay is None:
                self.failure = self.policy.give_up_message(child.name, child.crashes, now, child.tail())
                return
            child.restart_at = now + delay
            self._note(f"{child.name} exited (code {child.proc.returncode}); restarting in {delay:g} s")
        elif child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            with child.log_path.open("a") as f:
                f.write(f"--- {child.name} restarted by the hub after an exit (crash {len(child.crashes)}) ---\n")
            child.proc = self._start(child.name, child.args, child.log_path)
            self._count_restart(child.name)
            self._note(f"{child.name} restarted (pid {child.proc.pid})")

    def _note(self, text: str) -> None:
        log.warning(text)
        self.notes.append(text)

    def _count_restart(self, name: str) -> None:
        """Count the restart in the Redis stats (the API's /metrics and ``crmhub status`` show them);
        with Redis away the count is lost, the restart is not."""
        try:
            add_counts(redis.Redis.from_url(self.settings.redis_dsn, socket_timeout=2), {RESTARTS_PREFIX + name: 1})
        except redis.RedisError as exc:
            log.warning("restart of %s not counted: %s", name, exc)

    @contextlib.contextmanager
    def supervising(self, interval_s: float = 0.2) -> Iterator[None]:
        """Supervise in a background thread while the block runs; stop supervising before it exits."""
        stopping = threading.Event()

        def loop() -> None:
            while not stopping.wait(interval_s):
                self.supervise(time.monotonic())

        thread = threading.Thread(target=loop, name="crmhub-supervisor", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            thread.join()

    def dead_children(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() is not None]

    def stop_children(self) -> None:
        with self._lock:  # no restart while stopping
            for child in self.children:
                child.supervised = False
        for child in reversed(self.children):
            if child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.terminate()
        for child in reversed(self.children):
            stop_process(child.proc, timeout_s=15)

    def wait_for_api(self, timeout_s: float = 60.0) -> None:
        url = f"http://127.0.0.1:{self.settings.api_port}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            check_stop()
            dead = self.dead_children()
            if dead:
                raise ServerUnavailable(f"{dead[0].name} exited at start-up:\n{dead[0].tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise ServerUnavailable(f"the API did not answer on {url} within {timeout_s:.0f} s")


def check_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise ServerUnavailable(f"no Redis server answers at {url} (CRMHUB_REDIS_URL / --redis-url): {exc}") from exc


@contextlib.contextmanager
def running_hub(
    settings: Settings, services: tuple[str, ...] = tuple(SERVICES), supervise: bool = False
) -> Iterator[Hub]:
    """Start servers, topics and services; stop everything, in reverse order, when the block exits.
    With ``supervise``, a service (or the API) that exits is restarted, and so is the embedded Redis (tests
    that stop and start services themselves leave it off)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "logs").mkdir(exist_ok=True)
    logs = settings.data_dir / "logs"
    redis_server: EmbeddedRedis | None = None
    with contextlib.ExitStack() as stack:
        if "api" in services:
            check_port_free(settings.api_port, "HTTP API", "api_port")
        updates: dict[str, object] = {}
        if settings.embedded_kafka:
            updates["kafka_url"] = stack.enter_context(embedded_kafka(settings.kafka_port, logs / "tansu.log"))
            updates["broker_flavour"] = "tansu"
        if settings.embedded_redis:
            redis_server = stack.enter_context(
                embedded_redis(settings.redis_port, settings.data_dir / "redis", logs / "redis.log")
            )
            updates["redis_url"] = redis_server.url
        resolved = settings.model_copy(update=updates)
        check_stop()
        kafka_io.wait_until_reachable(resolved, timeout_s=10)
        check_redis(resolved.redis_dsn)
        kafka_io.ensure_topics(resolved)
        check_stop()
        if "ingest" in services:
            upgrade_if_needed(resolved)  # identifiers in Redis as keyed hashes before ingest reads them
        hub = Hub(resolved, redis_server=redis_server)
        shutil.rmtree(hub.metrics_dir, ignore_errors=True)  # the figures of an earlier run are not this one's
        hub.metrics_dir.mkdir()
        stack.callback(hub.stop_children)
        for name in services:
            hub.spawn(name, SERVICES[name], supervised=supervise)
        if "api" in services:
            hub.wait_for_api()
        if supervise:
            stack.enter_context(hub.supervising())  # exits first: no restart races the stop
        yield hub
