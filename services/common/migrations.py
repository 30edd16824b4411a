"""Alembic wiring: bring a service's database to its newest revision at start-up.

The environment script is shared (services/common/alembic); revisions live with each service.
`make revision SERVICE=identity MESSAGE="..."` autogenerates a new one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPT_LOCATION = Path(__file__).parent / "alembic"


def alembic_config(versions_dir: Path, metadata: MetaData) -> Config:
    """An Alembic Config for one service, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions_dir))
    config.attributes["metadata"] = metadata
    return config


async def upgrade_to_head(
    engine: AsyncEngine, versions_dir: Path, metadata: MetaData, revision: str = "head"
) -> None:
    """Apply every revision the database lacks up to `revision` (idempotent; safe for concurrent
    starters on PG). Tests of data migrations stop at an earlier revision."""
    config = alembic_config(versions_dir, metadata)

    def _run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision stamped in the database, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(_read)
