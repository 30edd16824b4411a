"""Port blocks for the meshes and servers tests start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.common.ports import free_port_block

pytestmark = pytest.mark.unit


def _ephemeral_start() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_a_port_block_lies_below_the_ephemeral_range_and_every_port_of_it_binds() -> None:
    for _ in range(20):
        base = free_port_block(11)
        assert base >= 20_000 and base + 11 <= _ephemeral_start()
        sockets = [socket.socket() for _ in range(11)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind(("127.0.0.1", base + offset))
        finally:
            for sock in sockets:
                sock.close()
