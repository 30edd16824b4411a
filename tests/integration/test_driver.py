"""Hot statements on asyncpg directly (services.common.driver), on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from services.common.db import make_engine, new_metadata
from services.common.driver import DriverPool, DriverStatement

_METADATA = new_metadata()
_ROWS = Table(
    "rows",
    _METADATA,
    Column("code", String(12), primary_key=True),
    Column("state", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)
_COLUMNS = [column.key for column in _ROWS.columns]
_CLAIM = DriverStatement.of(postgresql.insert(_ROWS).on_conflict_do_nothing(), _COLUMNS)
_FINISH = DriverStatement.of(
    update(_ROWS)
    .where(_ROWS.c.code == bindparam("key"), _ROWS.c.state == 0)
    .values(state=1, body=bindparam("body")),
    ["key", "body"],
)
_BY_STATE = DriverStatement.of(
    select(_ROWS.c.code, (_ROWS.c.amount_fen * 2).label("doubled"))
    .where(_ROWS.c.state == bindparam("state"))
    .order_by(_ROWS.c.code),
    ["state"],
)
AT = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
async def driver(postgres_url: str, tracer_provider: TracerProvider) -> AsyncIterator[DriverPool]:
    engine = make_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    await engine.dispose()
    pool = await DriverPool.open(postgres_url, 2, tracer_provider.get_tracer("test"))
    assert pool is not None
    yield pool
    await pool.close()


async def _stored(postgres_url: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch("SELECT code, state, amount_fen, body, at FROM rows")
    finally:
        await connection.close()
    return [tuple(row) for row in rows]


async def test_a_core_statement_runs_with_the_callers_values_and_its_own_and_counts_rows(
    driver: DriverPool, postgres_url: str
) -> None:
    row = {"code": "A1", "state": 0, "amount_fen": 12_345, "body": None, "at": AT}
    assert await driver.execute(_CLAIM, row) == 1
    assert await driver.execute(_CLAIM, {**row, "amount_fen": 1}) == 0  # the key exists
    assert await _stored(postgres_url) == [("A1", 0, 12_345, None, AT)]
    # state = 1 and state = 0 are the statement's own values.
    assert await driver.execute(_FINISH, {"key": "A1", "body": b"answer"}) == 1
    assert await driver.execute(_FINISH, {"key": "A1", "body": b"other"}) == 0
    assert await _stored(postgres_url) == [("A1", 1, 12_345, b"answer", AT)]


async def test_a_missing_or_unknown_value_is_refused_before_anything_is_sent(
    driver: DriverPool, postgres_url: str
) -> None:
    with pytest.raises(ValueError, match=r"no value for \['body'\]"):
        await driver.execute(_FINISH, {"key": "A1"})
    with pytest.raises(ValueError, match=r"the statement binds no \['colour'\]"):
        DriverStatement.of(update(_ROWS).values(state=bindparam("state")), ["state", "colour"])
    assert await _stored(postgres_url) == []


async def test_each_run_is_a_client_span_and_a_failure_marks_it(
    driver: DriverPool, span_exporter: InMemorySpanExporter
) -> None:
    row = {"code": "A1", "state": 0, "amount_fen": 1, "body": None, "at": AT}
    await driver.execute(_CLAIM, row)
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        await driver.execute(_CLAIM, {**row, "code": "C" * 13})  # longer than String(12)
    spans = span_exporter.get_finished_spans()
    assert [(span.name, span.kind) for span in spans] == [("db INSERT", SpanKind.CLIENT)] * 2
    assert spans[0].attributes == {"db.system": "postgresql", "db.operation": "INSERT"}
    assert spans[0].status.status_code == StatusCode.UNSET
    assert spans[1].status.status_code == StatusCode.ERROR


async def test_sqlite_has_no_driver_pool(sqlite_url: str) -> None:
    assert await DriverPool.open(sqlite_url, 2) is None


async def test_a_select_returns_rows_read_by_column_name(driver: DriverPool) -> None:
    for code, amount in (("B2", 5), ("A1", 7)):
        row = {"code": code, "state": 0, "amount_fen": amount, "body": None, "at": AT}
        await driver.execute(_CLAIM, row)
    rows = await driver.fetch(_BY_STATE, {"state": 0})
    assert [(row.code, row.doubled) for row in rows] == [("A1", 14), ("B2", 10)]
    assert await driver.fetch(_BY_STATE, {"state": 1}) == []
    with pytest.raises(ValueError, match="INSERT returns no rows to fetch"):
        await driver.fetch(_CLAIM, {})


async def test_a_transaction_commits_at_its_end_and_rolls_back_on_an_error(
    driver: DriverPool, postgres_url: str
) -> None:
    row = {"code": "A1", "state": 0, "amount_fen": 1, "body": None, "at": AT}
    with pytest.raises(RuntimeError):
        async with driver.transaction() as transaction:
            assert await transaction.execute(_CLAIM, row) == 1
            assert [r.code for r in await transaction.fetch(_BY_STATE, {"state": 0})] == ["A1"]
            raise RuntimeError("the caller's check failed")
    assert await _stored(postgres_url) == []
    async with driver.transaction() as transaction:
        await transaction.execute(_CLAIM, row)
        await transaction.execute(_FINISH, {"key": "A1", "body": b"answer"})
    assert await _stored(postgres_url) == [("A1", 1, 1, b"answer", AT)]


async def test_asyncpg_rolls_back_a_transaction_left_open_though_the_pool_keeps_sessions(
    driver: DriverPool, postgres_url: str
) -> None:
    row = {"code": "A1", "state": 0, "amount_fen": 1, "body": None, "at": AT}
    pool = driver._pool  # the asyncpg pool: a transaction begun behind the driver's back
    async with pool.acquire() as connection:
        await connection.execute("BEGIN")
        await connection.execute(_CLAIM.sql, *_CLAIM.arguments(row))
    # Both connections of the pool (size 2), so the one released above among them.
    async with pool.acquire() as first, pool.acquire() as second:
        assert not first.is_in_transaction() and not second.is_in_transaction()
    assert await _stored(postgres_url) == []
