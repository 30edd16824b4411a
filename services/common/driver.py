"""Hot statements on PostgreSQL, run on asyncpg directly instead of through SQLAlchemy.

Through SQLAlchemy a one-row statement on the autocommit engine cost 0.27-0.33 ms of the
client's CPU, against 0.09-0.11 ms on an asyncpg pool: about half of the difference is the
pool's checkout and check-in, half the execution (docs/performance.md, twelfth round). For the
few statements every request makes, that is worth a second way to run them; everything else
stays with SQLAlchemy, which also runs these same statements on SQLite.

Each statement is still written once, as a Core statement: `DriverStatement.of` compiles it for
PostgreSQL's asyncpg dialect (its `$n` text and the order of its parameters) and keeps the
values the statement binds itself, so the two ways run the same SQL.
"""

from __future__ import annotations

import contextlib
import functools
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from services.common.db import column_arrays, unnested_insert

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DriverStatement:
    """A Core statement compiled once for asyncpg."""

    sql: str
    operation: str  # INSERT, UPDATE ...: the name of its span
    # In parameter order: the name of a value the caller gives, or a value the statement binds.
    parameters: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    supplied: frozenset[str]
    row: Any  # a SELECT's rows: a named tuple of its columns, read by name as SQLAlchemy's are

    @classmethod
    def of(cls, statement: ClauseElement, supplied: Collection[str]) -> DriverStatement:
        """Compile `statement`; the caller gives the values named in `supplied` at each run
        (for an INSERT without values(), they are also the columns it inserts)."""
        compiled = statement.compile(dialect=_DIALECT, column_keys=list(supplied))
        assert isinstance(compiled, SQLCompiler)
        parameters = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.bind_processor(_DIALECT)
            parameters.append((name, bind.effective_value, processor))
        names = {name for name, _, _ in parameters}
        unknown = set(supplied) - names
        if unknown:
            raise ValueError(f"the statement binds no {sorted(unknown)}")
        columns = getattr(statement, "selected_columns", None)
        row = namedtuple("Row", list(columns.keys())) if columns is not None else None
        return cls(
            compiled.string,
            compiled.string.split(None, 1)[0],
            tuple(parameters),
            frozenset(supplied),
            row,
        )

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for one run with the caller's `values`."""
        missing = self.supplied - values.keys()
        if missing:
            raise ValueError(f"no value for {sorted(missing)}")
        arguments = []
        for name, bound, processor in self.parameters:
            value = values[name] if name in self.supplied else bound
            arguments.append(processor(value) if processor is not None else value)
        return arguments


async def keep_session(connection: Any) -> None:
    """Release a connection without asyncpg's session reset (RESET ALL and more, a round trip on
    every release): nothing run here changes session state. asyncpg still rolls back a
    transaction left open (its block cancelled before the rollback got through) before calling
    this; a test holds it to that."""


class DriverPool:
    """asyncpg connections of a service's PostgreSQL database, for its DriverStatements."""

    def __init__(self, pool: Any, tracer: Tracer | None) -> None:
        self._pool = pool
        self._tracer = tracer

    @classmethod
    async def open(cls, url: str, size: int, tracer: Tracer | None = None) -> DriverPool | None:
        """A pool of up to `size` connections for a SQLAlchemy PostgreSQL URL; None for any
        other database (SQLite runs every statement through SQLAlchemy)."""
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            return None
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, reset=keep_session)
        return cls(pool, tracer)

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> int:
        """Run one statement in autocommit; the rows it inserted, updated or deleted."""
        async with self._pool.acquire() as connection:
            return await _execute(connection, statement, values, self._tracer)

    async def fetch(self, statement: DriverStatement, values: Mapping[str, Any]) -> list[Any]:
        """A SELECT's rows, each a named tuple of its columns."""
        async with self._pool.acquire() as connection:
            return await _fetch(connection, statement, values, self._tracer)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[DriverTransaction]:
        """One connection in a transaction (READ COMMITTED, PostgreSQL's default, as the
        services' SQLAlchemy sessions): committed when the block ends, rolled back on an
        exception."""
        async with self._pool.acquire() as connection, connection.transaction():
            yield DriverTransaction(connection, self._tracer)

    async def close(self) -> None:
        """Close every connection."""
        await self._pool.close()


class DriverTransaction:
    """Statements on the connection of one `DriverPool.transaction()`."""

    def __init__(self, connection: Any, tracer: Tracer | None) -> None:
        self._connection = connection
        self._tracer = tracer

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> int:
        """Run one statement; the rows it inserted, updated or deleted."""
        return await _execute(self._connection, statement, values, self._tracer)

    async def fetch(self, statement: DriverStatement, values: Mapping[str, Any]) -> list[Any]:
        """A SELECT's rows, each a named tuple of its columns."""
        return await _fetch(self._connection, statement, values, self._tracer)


Driver = DriverPool | DriverTransaction  # what runs DriverStatements


async def insert_rows(driver: Driver, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """services.common.db.insert_rows on the driver: the rows' columns as arrays, one
    execution of the same unnest statement."""
    if not rows:
        return
    names, columns = column_arrays(rows)
    await driver.execute(_unnested_insert(table, names), columns)


@functools.cache
def _unnested_insert(table: Table, names: tuple[str, ...]) -> DriverStatement:
    return DriverStatement.of(unnested_insert(table, names), names)


async def _execute(
    connection: Any, statement: DriverStatement, values: Mapping[str, Any], tracer: Tracer | None
) -> int:
    arguments = statement.arguments(values)
    with _span(tracer, statement):
        status: str = await connection.execute(statement.sql, *arguments)
    # asyncpg returns the command tag: "INSERT 0 1", "UPDATE 1", "DELETE 0"; "CREATE TABLE"
    # and the like count nothing.
    count = status.rsplit(None, 1)[-1]
    return int(count) if count.isdigit() else 0


async def _fetch(
    connection: Any, statement: DriverStatement, values: Mapping[str, Any], tracer: Tracer | None
) -> list[Any]:
    if statement.row is None:
        raise ValueError(f"{statement.operation} returns no rows to fetch")
    arguments = statement.arguments(values)
    with _span(tracer, statement):
        records = await connection.fetch(statement.sql, *arguments)
    make = statement.row._make
    return [make(record.values()) for record in records]


@contextlib.contextmanager
def _span(tracer: Tracer | None, statement: DriverStatement) -> Iterator[None]:
    """A CLIENT span like services.common.tracing.trace_database's, under the current one."""
    if tracer is None:
        yield
        return
    span = tracer.start_span(
        f"db {statement.operation}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.operation": statement.operation},
    )
    try:
        yield
    except Exception as error:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        span.end()
