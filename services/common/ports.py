"""Free TCP ports on this machine, for meshes and servers that tests and benchmarks start."""

from __future__ import annotations

import socket


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive free TCP ports."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((host, 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
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
