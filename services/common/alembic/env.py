"""Alembic environment shared by every service.

Each service keeps its own revisions in `services/<name>/migrations/`; the connection and the
service's MetaData arrive through `config.attributes` (see services.common.migrations).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes["metadata"],
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
