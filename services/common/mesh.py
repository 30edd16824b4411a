"""The mesh runner: every service and the gateway as child processes on one machine.

Used by `medsettle up` and by the end-to-end test fixture. Each child is an ordinary
`python -m services.<name>` / `python -m gateway` process configured only through its environment,
exactly as it runs in Kubernetes. The runner waits until every child reports SERVING, writes
`endpoints.json`, and on stop sends SIGTERM to all children and waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import asyncpg
import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.ports import free_port_block

_LOGGER = logging.getLogger(__name__)

# Port order: the first service listens on base_port, the next on base_port + 1, ...
SERVICES = ("identity", "filing", "catalogue", "settlement", "clearing")
# Every process with a database of its own.
DATABASE_OWNERS = (*SERVICES, "gateway")


@dataclass
class MeshConfig:
    """How to run the mesh."""

    data_dir: Path = Path("var")
    """Per-service SQLite files, endpoints.json and (when log_to_files) the children's logs."""
    base_port: int = 50051
    gateway_port: int = 8080
    metrics_base_port: int = 0
    """First Prometheus port of the services; 0 means base_port + 100."""
    host: str = "127.0.0.1"
    postgres_url: str = ""
    """A PostgreSQL server (`postgresql://postgres@127.0.0.1:5432`); each service then gets its
    own database `<database_prefix>_<service>`. Empty: SQLite files in data_dir."""
    database_prefix: str = "medsettle"
    redis_url: str = ""
    """Redis for every service's cache; empty: in-process caches."""
    redis_prefix: str = "medsettle"
    log_json: bool = False
    log_to_files: bool = False
    """Send each child's output to data_dir/logs/<name>.log instead of this process's stdout."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More variables for every child (tests use it for short timeouts, OTLP endpoints, ...)."""

    @classmethod
    def on_free_ports(cls, data_dir: Path, **settings: Any) -> MeshConfig:
        """A config whose gRPC, gateway and metrics ports are one block, all free when chosen."""
        base = free_port_block(2 * len(SERVICES) + 1)
        ports = cls(
            data_dir=data_dir,
            base_port=base,
            gateway_port=base + len(SERVICES),
            metrics_base_port=base + len(SERVICES) + 1,
        )
        return replace(ports, **settings)

    def service_port(self, name: str) -> int:
        """The gRPC port of one service."""
        return self.base_port + SERVICES.index(name)

    def metrics_port(self, name: str) -> int:
        """The Prometheus port of one service (the gateway serves /metrics on its HTTP port)."""
        return (self.metrics_base_port or self.base_port + 100) + SERVICES.index(name)

    def endpoints(self) -> dict[str, str]:
        """What endpoints.json holds: gRPC host:port per service, the gateway's base URL, each
        process's Prometheus URL (`<name>_metrics`) and the gateway's database (for
        `medsettle hospital-credentials`)."""
        found = {name: f"{self.host}:{self.service_port(name)}" for name in SERVICES}
        found["gateway"] = f"http://{self.host}:{self.gateway_port}"
        for name in SERVICES:
            found[f"{name}_metrics"] = f"http://{self.host}:{self.metrics_port(name)}/metrics"
        found["gateway_metrics"] = f"{found['gateway']}/metrics"
        found["gateway_database"] = database_url(self, "gateway") or (
            f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.sqlite').resolve()}"
        )
        return found


def database_url(config: MeshConfig, service: str) -> str:
    """The SQLAlchemy URL a service uses under this config ('' = its SQLite default)."""
    if not config.postgres_url:
        return ""
    base = config.postgres_url.rstrip("/").replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{config.database_prefix}_{service}"


async def create_databases(config: MeshConfig) -> None:
    """Create each service's PostgreSQL database if it does not exist yet."""
    if not config.postgres_url:
        return
    connection = await asyncpg.connect(config.postgres_url.rstrip("/") + "/postgres")
    try:
        for service in DATABASE_OWNERS:
            name = f"{config.database_prefix}_{service}"
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_databases(config: MeshConfig) -> None:
    """Drop the services' PostgreSQL databases (tests and benchmarks clean up with this)."""
    if not config.postgres_url:
        return
    connection = await asyncpg.connect(config.postgres_url.rstrip("/") + "/postgres")
    try:
        for service in DATABASE_OWNERS:
            name = f"{config.database_prefix}_{service}"
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def child_environment(config: MeshConfig) -> dict[str, str]:
    """Environment shared by every child: each service's settings and everyone's upstreams."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(tuple(f"{name.upper()}_" for name in DATABASE_OWNERS))
    }
    targets = {name: f"{config.host}:{config.service_port(name)}" for name in SERVICES}
    for name in DATABASE_OWNERS:
        prefix = name.upper()
        env[f"{prefix}_LOG_JSON"] = "true" if config.log_json else "false"
        env[f"{prefix}_EXIT_WITH_PARENT"] = "true"
        for upstream, target in targets.items():
            env[f"{prefix}_{upstream.upper()}_TARGET"] = target
    for name in SERVICES:
        prefix = name.upper()
        env[f"{prefix}_GRPC_HOST"] = config.host
        env[f"{prefix}_GRPC_PORT"] = str(config.service_port(name))
        env[f"{prefix}_METRICS_PORT"] = str(config.metrics_port(name))
    for name in DATABASE_OWNERS:
        prefix = name.upper()
        env[f"{prefix}_DATA_DIR"] = str(config.data_dir.resolve())
        env[f"{prefix}_DATABASE_URL"] = database_url(config, name)
        env[f"{prefix}_REDIS_URL"] = config.redis_url
        env[f"{prefix}_REDIS_PREFIX"] = config.redis_prefix
    env["GATEWAY_HTTP_HOST"] = config.host
    env["GATEWAY_HTTP_PORT"] = str(config.gateway_port)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(Path(__file__).resolve().parents[2]),
            str(Path(__file__).resolve().parents[2] / "protos" / "gen"),
        ]
    )
    env.update(config.extra_env)
    return env


class Mesh:
    """A running (or stopped) set of child processes."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._log_files: list[IO[bytes]] = []

    @property
    def endpoints_path(self) -> Path:
        """Where start() writes endpoints.json."""
        return self.config.data_dir / "endpoints.json"

    async def start(self, timeout_s: float = 60.0) -> dict[str, str]:
        """Start every service, then the gateway; return the endpoints once all are SERVING."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.endpoints_path.unlink()
        await create_databases(self.config)
        env = child_environment(self.config)
        try:
            for name in SERVICES:
                await self._spawn(name, [sys.executable, "-m", f"services.{name}"], env)
            await asyncio.wait_for(self._services_serving(), timeout_s)
            await self._spawn("gateway", [sys.executable, "-m", "gateway"], env)
            await asyncio.wait_for(self._gateway_serving(), timeout_s)
        except BaseException:
            await self.stop()
            raise
        endpoints = self.config.endpoints()
        self.endpoints_path.write_text(json.dumps(endpoints, indent=2) + "\n")
        return endpoints

    async def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        output: int | IO[bytes] | None = None
        if self.config.log_to_files:
            log_dir = self.config.data_dir / "logs"
            log_dir.mkdir(exist_ok=True)
            log_file = (log_dir / f"{name}.log").open("ab")
            self._log_files.append(log_file)
            output = log_file
        self.processes[name] = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=output, stderr=output, start_new_session=True
        )

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.returncode is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode} during start-up"
                )

    async def _services_serving(self) -> None:
        for name in SERVICES:
            target = f"{self.config.host}:{self.config.service_port(name)}"
            async with grpc.aio.insecure_channel(target) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while True:
                    self._check_alive()
                    try:
                        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.aio.AioRpcError:
                        pass
                    await asyncio.sleep(0.1)

    async def _gateway_serving(self) -> None:
        url = self.config.endpoints()["gateway"] + "/healthz"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)

    async def wait_for_exit(self) -> str:
        """Block until any child exits; return its name (a crash while running)."""
        waiters = {
            asyncio.ensure_future(process.wait()): name for name, process in self.processes.items()
        }
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waiters[done.pop()]

    async def stop(self, grace_s: float = 10.0) -> dict[str, int]:
        """SIGTERM the gateway first, then the services; SIGKILL what outlives grace_s."""
        order = ["gateway", *reversed(SERVICES)]
        for name in order:
            process = self.processes.get(name)
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name in order:
            process = self.processes.get(name)
            if process is None:
                continue
            try:
                codes[name] = await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                process.kill()
                codes[name] = await process.wait()
        for log_file in self._log_files:
            log_file.close()
        self._log_files.clear()
        return codes
