"""The whole mesh as child processes on free loopback ports, started and stopped per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from services.common.mesh import SERVICES, Mesh, MeshConfig
from tests.conftest import free_port_block


def mesh_config(data_dir: Path, **overrides: object) -> MeshConfig:
    """A config on free ports with the children's logs in data_dir/logs."""
    # gRPC ports, the gateway's, then the metrics ports: one block, all free when chosen.
    base = free_port_block(2 * len(SERVICES) + 1)
    config = MeshConfig(
        data_dir=data_dir,
        base_port=base,
        gateway_port=base + len(SERVICES),
        metrics_base_port=base + len(SERVICES) + 1,
        log_to_files=True,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def mesh(tmp_path_factory: object) -> AsyncIterator[Mesh]:
    """A running mesh on the embedded default (SQLite files, in-process caches)."""
    data_dir = tmp_path_factory.mktemp("mesh")  # type: ignore[attr-defined]
    running = Mesh(mesh_config(data_dir))
    await running.start()
    yield running
    await running.stop()
