"""Async SQLAlchemy: the declarative base, engines for PostgreSQL and SQLite, session factories.

Each service owns its database. Repositories receive an AsyncSession and never commit; the servicer
opens one session (one transaction) per RPC.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    CursorResult,
    Enum,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm.attributes import set_committed_value

T = TypeVar("T")

# Stable constraint names, so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData with the project's naming convention; one per service."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str) -> bool:
    """True for the embedded default."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """asyncpg for PostgreSQL; aiosqlite (WAL, immediate transactions) for SQLite."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _make_sqlite_serializable(engine)
        return engine
    # No pre-ping: it cost a round trip per checkout (12% of the gateway's samples under load).
    # A dropped connection fails its statement instead; SQLAlchemy then invalidates the pool and
    # the caller's retry (or the client's) gets a fresh connection. Recycling bounds their age.
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
    )


def _make_sqlite_serializable(engine: AsyncEngine) -> None:
    """Every SQLite transaction starts with BEGIN IMMEDIATE.

    pysqlite defers BEGIN until the first write, so two read-then-write transactions can both
    read and then one fails with "database is locked". Taking the write lock at BEGIN serialises
    writers, which is what the money rules (annual caps, one active filing) rely on.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose loaded objects stay usable after commit (they are mapped to protos later)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def make_autocommit_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions outside any transaction, for reads and for writes of one statement (see
    `autocommit_engine`)."""
    return make_session_factory(autocommit_engine(engine))


def autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads and writes of one statement. On PostgreSQL its statements run in
    autocommit: no BEGIN and COMMIT (or ROLLBACK) round trips, which were half of a one-row
    lookup's database time. Nothing is lost: under READ COMMITTED each statement takes its own
    snapshot even inside a transaction, and one statement is atomic on its own. Use ordinary
    transactions when statements must commit together or agree (a lock). On SQLite this is the
    engine itself, so a write must still be made inside `.begin()` (which on PostgreSQL then
    begins nothing)."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def upsert_constructor(session: AsyncSession) -> Any:
    """The dialect's `insert` (with on_conflict_do_nothing / _do_update) for this session."""
    return _dialect_insert(session.get_bind().dialect.name)


def _dialect_insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def insert_missing(
    executor: AsyncSession | AsyncConnection, model: type[Any], values: dict[str, Any]
) -> bool:
    """Insert a row unless its key exists; True when this call inserted it.

    ON CONFLICT DO NOTHING on both backends, so a concurrent inserter never raises here: the
    loser sees False and reads the winner's row.
    """
    dialect = (
        executor.get_bind().dialect if isinstance(executor, AsyncSession) else executor.dialect
    )
    statement = _insert_missing_statement(dialect.name, model.__table__)
    result = await executor.execute(statement, values)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


@functools.cache
def _insert_missing_statement(dialect: str, table: Table) -> Any:
    """One Core statement per table, its values bound at execution: SQLAlchemy then finds it
    compiled in its cache at once, where an ORM insert with inline values cost about 0.25 ms
    more per call in building and hashing the statement (a third of a small transaction)."""
    return _dialect_insert(dialect)(table).on_conflict_do_nothing()


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all name the same columns, in their order.

    On PostgreSQL one execution: each column's values go as one array and the statement
    unnests them. Through the driver's executemany each row was an execution of its own, about
    0.1 ms of the server's CPU apiece: 5 ms for a 50-line upload (docs/performance.md, eleventh
    round). SQLite, in process, takes them row by row."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        names, columns = column_arrays(rows)
        await session.execute(unnested_insert(table, names), columns)
    else:
        await session.execute(insert(table), rows)


def column_arrays(rows: Sequence[dict[str, Any]]) -> tuple[tuple[str, ...], dict[str, list[Any]]]:
    """The column names of rows that all name the same ones, and each column's values in row
    order: the parameters of `unnested_insert`."""
    names = tuple(rows[0])
    return names, {name: [row[name] for row in rows] for name in names}


@functools.cache
def unnested_insert(table: Table, names: tuple[str, ...]) -> Any:
    """INSERT INTO table (names) SELECT * FROM unnest(one array per name): the arrays are
    bound as `names`. Their rows come out in array order, so serial keys follow it."""
    arrays = [
        bindparam(name, type_=postgresql.ARRAY(_unbounded(table.c[name].type))) for name in names
    ]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived()
    return insert(table).from_select(list(names), select(*unnested.c))


def _unbounded(column_type: Any) -> Any:
    """The column's type without its length or precision, for the array an insert binds: an
    explicit cast to VARCHAR(30) or NUMERIC(10, 2) would cut or round a value silently, where
    the insert into the column refuses one that does not fit."""
    if isinstance(column_type, String) and not isinstance(column_type, Enum):
        return String()
    if isinstance(column_type, Numeric):
        return Numeric()
    return column_type


async def locked_row(
    session: AsyncSession, model: type[T], key: dict[str, Any], zero: dict[str, Any]
) -> T:
    """The row with this key, inserted with `zero` values when missing, locked until commit.

    One statement: an upsert whose conflict branch rewrites a key column with itself, which
    locks the existing row (PostgreSQL) and returns it as stored. SQLite transactions hold the
    write lock from BEGIN already. The statement is built once per table and set of columns:
    building and hashing it with inline values cost about 0.3 ms a call.
    """
    statement = _locked_row_statement(
        session.get_bind().dialect.name, cast(Hashable, model), tuple(key), tuple(zero)
    )
    row: T | None = await session.scalar(
        statement, {**key, **zero}, execution_options={"populate_existing": True}
    )
    assert row is not None
    return row


@functools.cache
def _locked_row_statement(
    dialect: str, model: Any, key: tuple[str, ...], values: tuple[str, ...]
) -> Any:
    """A Core upsert that returns the table's columns, loaded as `model` by an ORM select: the
    ORM's own insert-returning path (bulk insert machinery) cost 0.25-0.5 ms more a call."""
    table = model.__table__
    upsert = _dialect_insert(dialect)(table).values(
        {column: bindparam(column) for column in (*key, *values)}
    )
    upsert = upsert.on_conflict_do_update(
        index_elements=list(key), set_={key[0]: upsert.excluded[key[0]]}
    ).returning(*table.columns)
    return select(model).from_statement(upsert)


@dataclass(frozen=True)
class LockedRow:
    """A row to find (or insert with `zero` values) and lock: see `locked_rows`."""

    model: Any
    key: dict[str, Any]
    zero: dict[str, Any]


async def locked_rows(session: AsyncSession, wanted: Sequence[LockedRow]) -> list[Any]:
    """Each wanted row, inserted with its zero values when missing, locked until commit in the
    order given; returned as new (transient) instances of the models holding the stored values.

    On PostgreSQL one statement: upserts as in `locked_row`, each a data-modifying CTE whose row
    source needs the previous CTE's row, so the locks are taken in the order given, as with one
    statement per row; each row after the first saves a round trip (0.3-0.4 ms of CPU).
    Elsewhere one `locked_row` each. The instances are not in the session: write their changes
    with `write_rows`."""
    if session.get_bind().dialect.name != "postgresql":
        found = [await locked_row(session, row.model, row.key, row.zero) for row in wanted]
        return [
            transient_row(row.model, instance) for row, instance in zip(wanted, found, strict=True)
        ]
    shapes = tuple((row.model, tuple(row.key), tuple(row.zero)) for row in wanted)
    parameters = {
        f"r{index}_{name}": value
        for index, row in enumerate(wanted)
        for name, value in (*row.key.items(), *row.zero.items())
    }
    stored = (await session.execute(_locked_rows_statement(shapes), parameters)).one()._mapping
    return [
        row.model(**{column.key: stored[f"r{index}_{column.key}"] for column in _columns(row)})
        for index, row in enumerate(wanted)
    ]


def transient_row(model: type[T], source: Any) -> T:
    """A new instance of `model`, in no session, holding the values `source` has under its
    columns' names (a loaded row, or a driver's row: services.common.driver)."""
    columns = model.__table__.columns  # type: ignore[attr-defined]
    return model(**{column.key: getattr(source, column.key) for column in columns})


def _columns(row: LockedRow) -> Any:
    return row.model.__table__.columns


@functools.cache
def _locked_rows_statement(shapes: tuple[tuple[Any, tuple[str, ...], tuple[str, ...]], ...]) -> Any:
    """SELECT over one upsert CTE per (model, key columns, zero columns), each after the one
    before (its row source asks that the previous CTE returned a row), with every column of each
    as r<index>_<column>; values bound at execution as r<index>_<column>."""
    previous = None
    ctes = []
    for index, (model, key, values) in enumerate(shapes):
        table = model.__table__
        columns = (*key, *values)
        bound = [bindparam(f"r{index}_{name}", type_=table.c[name].type) for name in columns]
        source = select(*bound)
        if previous is not None:
            source = source.where(select(literal_column("1")).select_from(previous).exists())
        upsert = postgresql.insert(table).from_select(list(columns), source)
        locking = upsert.on_conflict_do_update(
            index_elements=list(key), set_={key[0]: upsert.excluded[key[0]]}
        )
        previous = locking.returning(*table.columns).cte(f"r{index}")
        ctes.append((previous, table))
    joined: Any = ctes[0][0]
    for cte, _ in ctes[1:]:
        joined = joined.join(cte, true())  # one row each: no condition to join on
    return select(
        *(
            cte.c[column.key].label(f"r{index}_{column.key}")
            for index, (cte, table) in enumerate(ctes)
            for column in table.columns
        )
    ).select_from(joined)


@dataclass(frozen=True)
class RowWrite:
    """One row to write now, past the unit of work: an INSERT, or an UPDATE of a loaded row by
    its primary key (`loaded` then takes the new values as its stored state once written)."""

    table: Table
    values: dict[str, Any]
    key: dict[str, Any] | None = None
    loaded: Any = None

    @classmethod
    def insert(cls, model: type[Any], values: dict[str, Any]) -> RowWrite:
        return cls(model.__table__, values)

    @classmethod
    def update(cls, row: Any, changes: dict[str, Any]) -> RowWrite:
        table = row.__table__
        key = {column.key: getattr(row, column.key) for column in table.primary_key}
        return cls(table, changes, key, row)

    @property
    def shape(self) -> _WriteShape:
        return self.table, None if self.key is None else tuple(self.key), tuple(self.values)


_WriteShape = tuple[Table, tuple[str, ...] | None, tuple[str, ...]]
"""A write's table, key columns (None: an insert) and written columns: what its SQL depends on."""


async def write_rows(session: AsyncSession, writes: Sequence[RowWrite]) -> None:
    """Make these writes now, in order, without the ORM's unit of work (on the settling path it
    cost more than the statements it emitted: about 2 ms of CPU for five rows).

    On PostgreSQL they are one statement, all but the last as data-modifying CTEs: one round
    trip instead of one per row, each of which cost 0.3-0.4 ms of CPU. PostgreSQL runs the parts of
    one statement on one snapshot and none sees another's change, so no two writes may touch
    the same row. Elsewhere they are one statement each. Statements are built once per
    sequence of shapes, their values bound at execution."""
    if not writes:
        return
    if session.get_bind().dialect.name == "postgresql":
        shapes = tuple(write.shape for write in writes)
        parameters: dict[str, Any] = {}
        for index, write in enumerate(writes):
            parameters.update(_bound(index, write))
        await session.execute(_combined_statement(shapes), parameters)
    else:
        for write in writes:
            await session.execute(_write_statement(0, write.shape), _bound(0, write))
    for write in writes:
        if write.loaded is not None:
            for name, value in write.values.items():
                set_committed_value(write.loaded, name, value)


def _bound(index: int, write: RowWrite) -> dict[str, Any]:
    """The write's values under the parameter names of `_write_statement(index, ...)`."""
    bound = {f"w{index}v_{name}": value for name, value in write.values.items()}
    bound.update({f"w{index}k_{name}": value for name, value in (write.key or {}).items()})
    return bound


@functools.cache
def _write_statement(index: int, shape: _WriteShape) -> Any:
    table, key, columns = shape
    values: dict[str, Any] = {name: bindparam(f"w{index}v_{name}") for name in columns}
    if key is None:
        return table.insert().values(values)
    where = [table.c[name] == bindparam(f"w{index}k_{name}") for name in key]
    return table.update().where(*where).values(values)


@functools.cache
def _combined_statement(shapes: tuple[_WriteShape, ...]) -> Any:
    *first, last = (_write_statement(index, shape) for index, shape in enumerate(shapes))
    return last.add_cte(*(statement.cte(f"w{index}") for index, statement in enumerate(first)))


async def analyze(session: AsyncSession, *models: type[Any]) -> None:
    """Refresh PostgreSQL's planner statistics of these tables now, inside the session's
    transaction (its own uncommitted rows are counted). SQLite needs nothing."""
    if session.get_bind().dialect.name == "postgresql":
        tables = ", ".join(model.__tablename__ for model in models)
        await session.execute(text(f"ANALYZE {tables}"))


class GrowingTables:
    """Keeps PostgreSQL's planner statistics true while one long transaction fills tables.

    A bulk upload (a national persons file: 1.6 million rows) writes and looks up in one
    transaction. The planner's statistics still describe the tables as they were, so its lookups
    by key lists turn into sequential scans of tables that grow with every message: 100,000
    persons took 273 s. ANALYZE counts the rows the current transaction inserted, so running it
    each time the upload has grown fourfold keeps the plans on the indexes. SQLite needs nothing.
    """

    def __init__(self, session: AsyncSession, *models: type[Any], first_at: int = 5_000) -> None:
        self._session = session
        self._models = models
        self._written = 0
        self._next = first_at

    async def grew(self, rows: int) -> None:
        """Count rows written; refresh the statistics when they passed the next threshold."""
        self._written += rows
        if self._written >= self._next:
            self._next *= 4
            await analyze(self._session, *self._models)
