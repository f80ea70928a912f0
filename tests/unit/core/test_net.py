import socket
from pathlib import Path

from crmhub.core.net import LOWEST, bindable, ephemeral_start, free_port


def test_a_free_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
    ports = {free_port() for _ in range(50)}
    assert all(LOWEST <= port < ephemeral_start() for port in ports)
    assert all(bindable(port) for port in ports)
    assert len(ports) > 40


def test_a_port_in_use_is_not_bindable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        assert not bindable(sock.getsockname()[1])


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    source = tmp_path / "range"
    source.write_text("40000\t60999\n")
    assert ephemeral_start(source) == 40000
    assert ephemeral_start(tmp_path / "missing") == 32768
