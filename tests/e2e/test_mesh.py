"""`medsettle up` end to end: every service and the gateway start, answer health, stop cleanly."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.mesh import DATABASE_OWNERS, SERVICES, Mesh, MeshConfig, drop_databases
from tests.conftest import POSTGRES_SERVER, REDIS_URL
from tests.e2e.conftest import mesh_config
from tests.processes import children, wait_until_gone

pytestmark = pytest.mark.e2e
in_mesh_loop = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
# `python -m services.common`, with Ctrl-C raising KeyboardInterrupt even when this test runs in
# a process that ignores SIGINT (started with `&` by a shell without job control): Python keeps
# an inherited SIG_IGN, and the command would never see the signal the test sends.
_WITH_CTRL_C = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('services.common', run_name='__main__', alter_sys=True)"
)


async def listed_services(target: str) -> set[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: set[str] = set()
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
            names |= {service.name for service in reply.list_services_response.service}
    return names


@in_mesh_loop
async def test_every_service_serves_health_and_reflection(mesh: Mesh) -> None:
    endpoints = json.loads(mesh.endpoints_path.read_text())
    metrics = {f"{name}_metrics" for name in (*SERVICES, "gateway")}
    assert set(endpoints) == {*SERVICES, "gateway", "gateway_database", *metrics}
    assert endpoints["gateway_database"].endswith("/gateway.sqlite")
    for name in SERVICES:
        names = await listed_services(endpoints[name])
        assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
        async with grpc.aio.insecure_channel(endpoints[name]) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with httpx.AsyncClient() as client:
        reply = (await client.get(endpoints["gateway"] + "/healthz")).json()
    assert reply == {"status": "SERVING", "upstreams": dict.fromkeys(SERVICES, "SERVING")}


@in_mesh_loop
async def test_each_service_and_the_gateway_keep_their_own_sqlite_file(mesh: Mesh) -> None:
    files = sorted(path.name for path in mesh.config.data_dir.glob("*.sqlite"))
    assert files == sorted(f"{name}.sqlite" for name in DATABASE_OWNERS)


@in_mesh_loop
async def test_mesh_on_postgresql_and_redis_starts_and_stops(tmp_path: Path) -> None:
    config = mesh_config(
        tmp_path,
        postgres_url=POSTGRES_SERVER,
        database_prefix=f"medsettle_e2e_{os.getpid()}",
        redis_url=REDIS_URL,
    )
    running = Mesh(config)
    await running.start()
    try:
        assert not list(tmp_path.glob("*.sqlite"))
        async with httpx.AsyncClient() as client:
            reply = await client.get(config.endpoints()["gateway"] + "/healthz")
        assert reply.status_code == 200
    finally:
        codes = await running.stop()
        await drop_databases(config)
    assert {codes[name] for name in SERVICES} == {0}
    # uvicorn ends the gateway by raising SIGTERM again once its graceful shutdown is done.
    assert codes["gateway"] in (0, -signal.SIGTERM)


def _medsettle_up(data_dir: Path, *options: str) -> tuple[MeshConfig, subprocess.Popen[str]]:
    config = mesh_config(data_dir)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.common",
            "up",
            "--data-dir",
            str(data_dir),
            "--base-port",
            str(config.base_port),
            "--gateway-port",
            str(config.gateway_port),
            *options,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return config, process


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGINT lets `up` stop its children; a kill alone would once have left them running."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.stdout is not None
    process.stdout.close()


def _wait_for_endpoints(data_dir: Path, process: subprocess.Popen[str]) -> None:
    endpoints_file = data_dir / "endpoints.json"
    deadline = time.monotonic() + 60
    while not endpoints_file.exists():
        assert process.poll() is None, "medsettle up exited during start-up"
        assert time.monotonic() < deadline, "medsettle up did not start in 60 s"
        time.sleep(0.2)


def test_medsettle_up_writes_endpoints_and_exits_zero_on_ctrl_c(tmp_path: Path) -> None:
    config, process = _medsettle_up(tmp_path)
    try:
        _wait_for_endpoints(tmp_path, process)
        # `up` puts the metrics ports at --base-port + 100.
        expected = dataclasses.replace(config, metrics_base_port=0).endpoints()
        assert json.loads((tmp_path / "endpoints.json").read_text()) == expected
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        _stop(process)


@pytest.mark.parametrize(
    ("stop_signal", "phase"),
    [(signal.SIGTERM, "services starting"), (signal.SIGINT, "demo bundle loading")],
)
def test_medsettle_up_stopped_during_start_up_stops_its_children_and_exits_zero(
    tmp_path: Path, stop_signal: signal.Signals, phase: str
) -> None:
    _, process = _medsettle_up(tmp_path, "--demo")
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + 60
        if phase == "services starting":
            while not children(process.pid):
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.01)
        else:
            while not process.stdout.readline().startswith("loading the demo bundle"):
                assert time.monotonic() < deadline and process.poll() is None
        started = children(process.pid)
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        assert started and wait_until_gone(started, 1) == set()
    finally:
        _stop(process)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_children_of_a_killed_medsettle_up_stop_too(tmp_path: Path) -> None:
    _, process = _medsettle_up(tmp_path)
    try:
        _wait_for_endpoints(tmp_path, process)
        started = children(process.pid)
        assert len(started) == len(SERVICES) + 1
        process.kill()  # no chance to stop them, as when a supervisor is killed
        process.wait()
        assert wait_until_gone(started, 15) == set()
    finally:
        _stop(process)


def test_ctrl_c_ends_a_medsettle_command_with_status_130_and_no_traceback(tmp_path: Path) -> None:
    out_dir = tmp_path / "national"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WITH_CTRL_C,
            "demo-bundle",
            str(out_dir),
            "--scale",
            "national",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not out_dir.exists():  # writing: the national bundle takes tens of seconds
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        _, errors = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 130
    assert errors.strip().splitlines()[-1] == "interrupted" and "Traceback" not in errors
