"""Runs the whole hub: embedded servers (unless external URLs are set), topics, the four services, the API.

Each service is its own process (``python -m services.<name>``), configured only through ``CRMHUB_*``
environment variables, exactly as in docker-compose; their output goes to ``<data_dir>/logs/``. With
``--scale`` a service runs as several processes, one consumer group (``profile-1`` … ``profile-N``, each
named in ``CRMHUB_INSTANCE``, :mod:`crmhub.core.instance`); everything below treats each as a child of its own. With
supervision on (``crmhub up``/``demo``), a service or the API that exits is started again (see
:mod:`crmhub.supervision`); the embedded Redis too, on the same data (its append-only file); the broker
never: it keeps topics in memory only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from kafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from crmhub import broker_tables
from crmhub.broker_budget import ROLL_AT, Budget, Laps, wait_drained
from crmhub.core import kafka as kafka_io
from crmhub.core.errors import ServerUnavailable
from crmhub.core.instance import INSTANCE_ENV, instance_names
from crmhub.core.intake import hold_path
from crmhub.core.metrics import MULTIPROC_ENV, multiprocess_registry, rss_mb, samples
from crmhub.core.settings import Settings
from crmhub.core.sql import make_engine
from crmhub.core.stats import RESTARTS_PREFIX, add_counts, read_counts
from crmhub.core.topics import EVENTS
from crmhub.embedded import (
    EmbeddedKafka,
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
from services.profile.app import GROUP_ID as PROFILE_GROUP
from services.profile.store import ProfileStore

log = logging.getLogger("crmhub.hub")

SERVICES: dict[str, list[str]] = {
    "ingest": ["-m", "services.ingest"],
    "profile": ["-m", "services.profile"],
    "segmenter": ["-m", "services.segmenter"],
    "notifier": ["-m", "services.notifier"],
    "api": ["-m", "crmhub.api"],
}
# the demo's traffic is paused while the broker rolls over (a restart would send its events again)
PAUSED = ("traffic",)


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
    broker: EmbeddedKafka | None = None  # the embedded broker, replaced when past its memory budget
    budget: Budget = field(default_factory=lambda: Budget(0))
    released: threading.Event = field(default_factory=threading.Event)  # set when every process was stopped
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
            INSTANCE_ENV: name,
        }
        return spawn([sys.executable, *args], log_path, env)

    def spawn(self, name: str, args: list[str], supervised: bool = False) -> Child:
        """Start a child; a ``supervised`` one is started again whenever it exits (see :meth:`supervise`)."""
        log_path = self.log_dir / f"{name}.log"
        child = Child(name, self._start(name, args, log_path), log_path, args, supervised)
        with self._lock:
            self.children.append(child)
        return child

    def spawn_services(self, services: tuple[str, ...], supervised: bool) -> None:
        """Start ``services``, each as many times as ``--scale`` says (the API once)."""
        for name in services:
            for instance in instance_names(name, self.settings.instances.get(name, 1)):
                self.spawn(instance, SERVICES[name], supervised)

    def supervise(self, now: float) -> None:
        """One round of supervision at monotonic time ``now``: note the supervised children that exited,
        restart those whose backoff is over, and give up (``failure``) on one that keeps crashing."""
        with self._lock:
            self._supervise_redis()
            for child in self.children:
                if child.supervised and self.failure is None:
                    self._supervise_child(child, now)
            if self.failure is None and self.broker is not None and self.broker.proc is not None:
                rss = rss_mb(self.broker.proc.pid)
                if rss is not None and self.budget.due(rss, now):
                    self._roll_over(rss)
                    self.budget.last = time.monotonic()

    def _roll_over(self, rss: float) -> None:
        """Replace the broker by a new, empty one (see :mod:`crmhub.broker_budget`); the lock is held."""
        assert self.broker is not None
        self._note(f"broker at {rss:.0f} MB of its {self.budget.limit_mb} MB budget: rolling over to a new one")
        running = [c for c in self.children if c.proc.poll() is None or c.restart_at is not None]
        paused = [c for c in running if c.name in PAUSED]
        laps = Laps()
        api = [c for c in running if c.name == "api"]
        hold = hold_path(self.settings.data_dir)
        hold.touch()  # the API journals and answers on; its forwarder holds the inputs in the journal
        self._signal(paused, signal.SIGSTOP)
        drained = wait_drained(self.lags, self._service_counts)
        laps.mark("drain")
        self._stop([c for c in running if c.name not in PAUSED and c not in api])
        laps.mark("stop")
        try:
            tables = broker_tables.read_changelogs(self.settings)
            self.broker.restart(f"{rss:.0f} MB, past {ROLL_AT:.0%} of its {self.budget.limit_mb} MB budget")
            incarnation = kafka_io.ensure_topics(self.settings)
            carried = broker_tables.write_changelogs(self.settings, tables)
            laps.mark("tables")
            if drained:
                store = ProfileStore(make_engine(self.settings.sql_url))
                store.start_incarnation(PROFILE_GROUP, EVENTS, incarnation, self.settings.partitions)
                store.engine.dispose()
        except (ServerUnavailable, KafkaError, SQLAlchemyError, OSError) as exc:
            self.failure = f"the embedded broker could not be rolled over: {exc}"
            return
        self.failure = self.budget.too_small(rss_mb(self.broker.proc.pid) or 0.0) if self.broker.proc else None
        if self.failure:
            return
        hold.unlink()
        self._stop(api)  # a new API forwards what its journal held to the new broker (its new incarnation)
        laps.mark("api stop")
        for child in running:
            if child not in paused:
                child.restart_at = None
                child.proc = self._start(child.name, child.args, child.log_path)
        self._signal(paused, signal.SIGCONT)
        self._count_restart("broker")
        self._note(
            f"broker rolled over: {carried} table records carried, drained: {'yes' if drained else 'no'}; "
            f"took {laps.total():.0f} s ({laps})"
        )

    @staticmethod
    def _signal(children: list[Child], signum: int) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signum)

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
        for child in children:
            stop_process(child.proc, timeout_s=15)

    def lags(self) -> dict[tuple[str, str, int], int]:
        """Every service's consumer lag per partition, from the metric files they write."""
        lags = samples(multiprocess_registry(self.metrics_dir), "crmhub_consumer_lag")
        return {(k["service"], k["topic"], int(k["partition"])): int(v) for k, v in lags}

    def _service_counts(self) -> dict[str, int]:
        return read_counts(redis.Redis.from_url(self.settings.redis_dsn, socket_timeout=2))

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
        """Supervise in a background thread while the block runs; stop supervising before it exits.

        The thread then stays parked until :attr:`released`: the processes it started again (a service, Redis,
        a new broker) are told to die with the *thread* that started them (``PR_SET_PDEATHSIG``), and they
        must outlive the block (the broker is read at the stop, :func:`crmhub.broker_tables.save_at_stop`)."""
        stopping, stopped = threading.Event(), threading.Event()

        def loop() -> None:
            while not stopping.wait(interval_s):
                self.supervise(time.monotonic())
            stopped.set()
            self.released.wait()

        thread = threading.Thread(target=loop, name="crmhub-supervisor", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stopping.set()
            stopped.wait()

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
    broker: EmbeddedKafka | None = None
    released = threading.Event()
    with contextlib.ExitStack() as stack:
        stack.callback(released.set)  # the very last: see Hub.supervising
        if "api" in services:
            check_port_free(settings.api_port, "HTTP API", "api_port")
        updates: dict[str, object] = {}
        if settings.embedded_kafka:
            broker = stack.enter_context(embedded_kafka(settings.kafka_port, logs / "tansu.log"))
            updates["kafka_url"] = broker.address
            updates["broker_flavour"] = "tansu"
        if settings.embedded_redis:
            redis_server = stack.enter_context(
                embedded_redis(settings.redis_port, settings.data_dir / "redis", logs / "redis.log")
            )
            updates["redis_url"] = redis_server.url
        resolved = settings.model_copy(update=updates)
        check_stop()
        hold_path(settings.data_dir).unlink(missing_ok=True)  # left by a hub killed while rolling over
        kafka_io.wait_until_reachable(resolved, timeout_s=10)
        check_redis(resolved.redis_dsn)
        kafka_io.ensure_topics(resolved)
        check_stop()
        if "ingest" in services:
            upgrade_if_needed(resolved)  # identifiers in Redis as keyed hashes before ingest reads them
        if broker is not None:
            carried = broker_tables.carry_saved(resolved)
            if carried:
                log.info("the faust tables of the last stop carried to the new broker: %d records", carried)
            stack.callback(broker_tables.save_at_stop, resolved)  # runs after the services stopped
        budget = Budget(settings.broker_memory_mb if broker is not None and supervise else 0)
        hub = Hub(resolved, redis_server=redis_server, broker=broker, budget=budget, released=released)
        shutil.rmtree(hub.metrics_dir, ignore_errors=True)  # the figures of an earlier run are not this one's
        hub.metrics_dir.mkdir()
        stack.callback(hub.stop_children)
        hub.spawn_services(services, supervised=supervise)
        if "api" in services:
            hub.wait_for_api()
        if supervise:
            stack.enter_context(hub.supervising())  # exits first: no restart races the stop
        yield hub
