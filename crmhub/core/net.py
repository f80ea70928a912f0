"""Local ports: the embedded servers, the API and faust's web server each take a free one on 127.0.0.1.

A port is picked when the hub is configured and bound later, once its server starts. A port from the
kernel's ephemeral range (``bind(0)``) can be taken in between by any outgoing connection: the
services open dozens at start-up, and CI once saw the API fail with "address already in use" that way.
So ports are picked at random below that range, where only another explicit pick can land.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000
ATTEMPTS = 200


def ephemeral_start(source: Path = EPHEMERAL_RANGE) -> int:
    """The first port the kernel hands out to outgoing connections (Linux's default is 32768)."""
    try:
        return int(source.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and outside the ephemeral range when there is room below it."""
    highest = ephemeral_start() - 1
    if highest > LOWEST:
        for _ in range(ATTEMPTS):
            port = random.randint(LOWEST, highest)
            if bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
