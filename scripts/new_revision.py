"""Autogenerate a service's next Alembic revision against a scratch SQLite database.

Usage: `make revision SERVICE=settlement MESSAGE="visits and settlements"`. Read the result before
committing: autogenerate misses some changes (renames, server defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from services.common.db import make_engine
from services.common.migrations import alembic_config, upgrade_to_head

ROOT = Path(__file__).resolve().parent.parent


async def main(service: str, message: str) -> None:
    """Bring a scratch database to head, then write the revision that reaches the models."""
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    versions = ROOT / "services" / service / "migrations"
    revision_id = f"{len(list(versions.glob('[0-9]*.py'))) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite+aiosqlite:///{scratch}/scratch.sqlite")
        await upgrade_to_head(engine, versions, metadata)
        config = alembic_config(versions, metadata)

        def _revise(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.revision(config, message, autogenerate=True, rev_id=revision_id)

        async with engine.begin() as connection:
            await connection.run_sync(_revise)
        await engine.dispose()
    for path in versions.glob(f"{revision_id}_*.py"):
        _tidy(path)


def _tidy(path: Path) -> None:
    """Drop Alembic's banner comments and format the file as the rest of the code."""
    text = re.sub(r"\n *# ### .* ###", "", path.read_text())
    path.write_text(re.sub(r"Create Date: (\S+) .*", r"Create Date: \1", text))
    subprocess.run([Path(sys.executable).parent / "ruff", "format", "--quiet", path], check=True)
    print(f"wrote {path.relative_to(ROOT)}; read it, and wrap any line ruff still finds too long")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service")
    parser.add_argument("message")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.service, arguments.message))
