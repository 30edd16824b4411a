"""Free TCP ports on this machine, for meshes and servers that tests and benchmarks start."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below every common ephemeral range (Linux 32768-60999, IANA 49152-65535) and above the
# registered services this machine runs (PostgreSQL 5432, Redis 6379, ...).
_LOWEST = 20_000
_DEFAULT_EPHEMERAL_START = 32_768


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports that were free when checked.

    The block is taken below the kernel's ephemeral range. A port there is picked for a
    listener only by whoever asks for it by number, never for an outgoing connection, so the
    block stays free between this check and the child process's bind; a port the kernel handed
    out (bind to port 0) could be taken meanwhile by any client socket on the machine.
    """
    ceiling = max(_ephemeral_start(), _LOWEST + 1_000) - count
    for _ in range(200):
        base = random.randint(_LOWEST, ceiling)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports found")


def _ephemeral_start() -> int:
    """The first port the kernel hands out for outgoing connections."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START
