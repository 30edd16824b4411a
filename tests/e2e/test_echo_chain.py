"""The bench's echo servers do not outlive the process that started them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from services.common.ports import free_port_block
from tests.processes import running, wait_until_gone

pytestmark = pytest.mark.e2e

# A stand-in for the load generator: starts one echo server, says its pid, then waits.
_PARENT = """
import subprocess, sys, time
server = subprocess.Popen([sys.executable, "-m", "services.echo_chain", "--port", sys.argv[1]])
print(server.pid, flush=True)
time.sleep(120)
"""


def _serving(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + 20
    while not _serving(port):
        assert time.monotonic() < deadline, "the echo server never started"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_echo_server_exits_when_the_process_that_started_it_is_killed() -> None:
    port = free_port_block(1)
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    server = int(parent.stdout.readline())
    try:
        _wait_until_serving(port)
        parent.kill()  # no chance to clean up, as when a run is killed
        parent.wait()
        assert wait_until_gone({server}, 5) == set()
    finally:
        if running(server):
            subprocess.run(["kill", "-9", str(server)], check=False)
        parent.stdout.close()


def test_an_echo_server_leaves_ctrl_c_to_the_bench_and_stops_on_sigterm() -> None:
    port = free_port_block(1)
    server = subprocess.Popen([sys.executable, "-m", "services.echo_chain", "--port", str(port)])
    try:
        _wait_until_serving(port)
        server.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the process group
        time.sleep(0.5)
        assert server.poll() is None and _serving(port)
        server.terminate()
        assert server.wait(timeout=10) == -signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
