"""The whole mesh as child processes on free loopback ports, started and stopped per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from services.common.mesh import Mesh, MeshConfig


def mesh_config(data_dir: Path, **settings: object) -> MeshConfig:
    """A config on free ports with the children's logs in data_dir/logs."""
    return MeshConfig.on_free_ports(data_dir, log_to_files=True, **settings)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def mesh(tmp_path_factory: object) -> AsyncIterator[Mesh]:
    """A running mesh on the embedded default (SQLite files, in-process caches)."""
    data_dir = tmp_path_factory.mktemp("mesh")  # type: ignore[attr-defined]
    running = Mesh(mesh_config(data_dir))
    await running.start()
    yield running
    await running.stop()
