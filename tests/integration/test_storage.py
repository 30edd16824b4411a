"""Engines, sessions and Alembic wiring on both backends."""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    event,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clearing.models import Base as ClearingBase
from services.clearing.models import PairSpendRow
from services.clearing.server import MIGRATIONS_DIR as CLEARING_MIGRATIONS
from services.common.db import (
    GrowingTables,
    LockedRow,
    RowWrite,
    insert_missing,
    insert_rows,
    is_sqlite,
    locked_row,
    locked_rows,
    make_autocommit_session_factory,
    make_engine,
    make_session_factory,
    write_rows,
)
from services.common.migrations import current_revision, upgrade_to_head
from services.identity.models import Base as IdentityBase
from services.identity.models import PersonRow
from services.identity.server import MIGRATIONS_DIR as IDENTITY_MIGRATIONS
from services.settlement.models import Base as SettlementBase
from services.settlement.models import PersonYearRow, PolicyYearRow
from services.settlement.repository import _LIVE_CLASSIFIED, _STORED_LINES, _VISIT_AND_LINES
from services.settlement.server import MIGRATIONS_DIR as SETTLEMENT_MIGRATIONS


async def test_migrations_bring_an_empty_database_to_head_and_are_idempotent(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        assert await current_revision(engine) is None
        await upgrade_to_head(engine, IDENTITY_MIGRATIONS, IdentityBase.metadata)
        first = await current_revision(engine)
        await upgrade_to_head(engine, IDENTITY_MIGRATIONS, IdentityBase.metadata)
        assert first is not None
        assert await current_revision(engine) == first
    finally:
        await engine.dispose()


async def test_session_factory_commits_and_rolls_back(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT)"))
        async with sessions.begin() as session:
            await session.execute(text("INSERT INTO probe (id, v) VALUES (1, 'kept')"))
        with pytest.raises(RuntimeError):
            async with sessions.begin() as session:
                await session.execute(text("INSERT INTO probe (id, v) VALUES (2, 'lost')"))
                raise RuntimeError("abort")
        async with sessions() as session:
            rows = (await session.execute(text("SELECT id, v FROM probe"))).all()
        assert [tuple(row) for row in rows] == [(1, "kept")]
        assert is_sqlite(database_url) == database_url.startswith("sqlite")
    finally:
        await engine.dispose()


async def test_row_writes_are_one_statement_on_postgresql_and_leave_nothing_to_flush(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    key = {"year": 2026, "insured_prov": "130000"}
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    try:
        async with engine.begin() as connection:
            table = ClearingBase.metadata.tables[PairSpendRow.__tablename__]
            await connection.run_sync(ClearingBase.metadata.create_all, [table])
        async with sessions.begin() as session:
            await write_rows(
                session,
                [
                    RowWrite.insert(
                        PairSpendRow, {**key, "treatment_prov": treatment, "uncleared_fen": fen}
                    )
                    for treatment, fen in (("110000", 5), ("310000", 7))
                ],
            )
            values = {**key, "treatment_prov": "310000", "uncleared_fen": 0}
            assert await insert_missing(session, PairSpendRow, values) is False
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        async with sessions.begin() as session:
            row = await session.get(PairSpendRow, (2026, "130000", "110000"))
            assert row is not None
            statements.clear()
            await write_rows(
                session,
                [
                    RowWrite.update(row, {"uncleared_fen": 40}),
                    RowWrite.insert(
                        PairSpendRow, {**key, "treatment_prov": "440000", "uncleared_fen": 3}
                    ),
                ],
            )
            assert row.uncleared_fen == 40 and not session.dirty
            assert len(statements) == (2 if is_sqlite(database_url) else 1)
        with pytest.raises(IntegrityError):
            async with sessions.begin() as session:
                row = await session.get(PairSpendRow, (2026, "130000", "110000"))
                await write_rows(
                    session,
                    [
                        RowWrite.update(row, {"uncleared_fen": 99}),
                        RowWrite.insert(
                            PairSpendRow, {**key, "treatment_prov": "440000", "uncleared_fen": 1}
                        ),
                    ],
                )
        async with sessions() as session:
            stored = await session.execute(
                text("SELECT treatment_prov, uncleared_fen FROM pair_spend ORDER BY 1")
            )
            # Only the row named by the whole composite key changed; the failed pair left none.
            assert [tuple(r) for r in stored] == [("110000", 40), ("310000", 7), ("440000", 3)]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        await engine.dispose()


async def test_inserted_rows_keep_their_order_and_take_one_execution_on_postgresql(
    database_url: str,
) -> None:
    metadata = MetaData()
    lines = Table(
        "lines",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("sn", String(30), nullable=False),
        Column("amount_fen", BigInteger, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("cancelled_at", DateTime(timezone=True)),
    )
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    executions: list[bool] = []

    def count(*args: Any) -> None:
        if args[2].startswith("INSERT"):
            executions.append(args[5])  # executemany

    sent = [
        {"sn": f"{n:03d}", "amount_fen": n * 101, "body": bytes([n, 0, 255]), "cancelled_at": None}
        for n in (7, 3, 250, 1, 99)
    ]
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        async with sessions.begin() as session:
            await insert_rows(session, lines, sent)
            await insert_rows(session, lines, [])
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        async with sessions() as session:
            stored = await session.execute(select(lines).order_by(lines.c.id))
            rows = [row._mapping for row in stored]
    finally:
        await engine.dispose()
    assert [row["sn"] for row in rows] == ["007", "003", "250", "001", "099"]
    assert [row["amount_fen"] for row in rows] == [707, 303, 25250, 101, 9999]
    assert rows[2]["body"] == bytes([250, 0, 255]) and rows[0]["cancelled_at"] is None
    # PostgreSQL: one statement executed once (the columns as arrays); SQLite: one executemany.
    assert executions == ([True] if is_sqlite(database_url) else [False])


async def test_inserted_rows_too_long_for_a_column_are_refused_not_cut_on_postgresql(
    postgres_url: str,
) -> None:
    metadata = MetaData()
    lines = Table(
        "lines",
        metadata,
        Column("id", BigInteger, primary_key=True),
        Column("sn", String(3), nullable=False),
        Column("price", Numeric(6, 2), nullable=False),
    )
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        with pytest.raises(DBAPIError, match="too long"):
            async with sessions.begin() as session:
                rows = [{"sn": "abc", "price": Decimal("1.25")}, {"sn": "abcd", "price": 1}]
                await insert_rows(session, lines, rows)
        with pytest.raises(DBAPIError, match="overflow"):
            async with sessions.begin() as session:
                await insert_rows(session, lines, [{"sn": "abc", "price": Decimal("12345.6")}])
        async with sessions.begin() as session:
            await insert_rows(session, lines, [{"sn": "abc", "price": Decimal("1.255")}])
        async with sessions() as session:
            stored = (await session.execute(select(lines.c.sn, lines.c.price))).all()
    finally:
        await engine.dispose()
    # Nothing of the refused inserts; the column's own rounding applies to what fits.
    assert [tuple(row) for row in stored] == [("abc", Decimal("1.26"))]


async def test_a_visits_live_lines_are_read_on_the_partial_index_by_a_generic_plan(
    postgres_url: str,
) -> None:
    """The reads of live lines must not make PostgreSQL plan each execution anew: their generic
    plan (what a prepared statement settles on) uses the partial index of live lines."""
    engine = make_engine(postgres_url)
    try:
        await upgrade_to_head(engine, SETTLEMENT_MIGRATIONS, SettlementBase.metadata)
        plans: list[str] = []
        async with engine.connect() as connection:
            await connection.execute(text("SET plan_cache_mode = force_generic_plan"))
            for index, statement in enumerate((_STORED_LINES, _LIVE_CLASSIFIED, _VISIT_AND_LINES)):
                compiled = statement.compile(dialect=engine.dialect)
                await connection.exec_driver_sql(f"PREPARE read_{index} AS {compiled}")
                explained = await connection.exec_driver_sql(f"EXPLAIN EXECUTE read_{index}('V1')")
                plans.append("\n".join(line for (line,) in explained))
    finally:
        await engine.dispose()
    for plan in plans:
        assert "uq_fee_lines_live_sn" in plan, plan


async def test_locked_row_creates_a_missing_row_and_returns_an_existing_one_as_stored(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    key = {"year": 2026, "insured_prov": "130000", "treatment_prov": "110000"}
    try:
        async with engine.begin() as connection:
            table = ClearingBase.metadata.tables[PairSpendRow.__tablename__]
            await connection.run_sync(ClearingBase.metadata.create_all, [table])
        async with sessions.begin() as session:
            created = await locked_row(session, PairSpendRow, key, {"uncleared_fen": 5})
            assert created.uncleared_fen == 5
        async with sessions.begin() as session:
            found = await locked_row(session, PairSpendRow, key, {"uncleared_fen": 9})
            other = await locked_row(
                session, PairSpendRow, {**key, "treatment_prov": "310000"}, {"uncleared_fen": 9}
            )
        assert (found.uncleared_fen, other.uncleared_fen) == (5, 9)
    finally:
        await engine.dispose()


async def test_locked_rows_create_or_find_rows_of_two_tables_and_lock_both_in_one_statement(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    statements: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(_c: Connection, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    person = {"psn_no": "P1", "insuplc_admdvs": "131000", "year": 2026}
    wanted = [
        LockedRow(PersonYearRow, person, {**_ZERO_PERSON, "account_balance_fen": 700}),
        LockedRow(
            PolicyYearRow,
            {**person, "policy_id": "POL"},
            {"fund_paid_fen": 0, "inpatient_settlements": 0, "annual_cap_fen": 90_000},
        ),
    ]
    try:
        async with engine.begin() as connection:
            tables = [SettlementBase.metadata.tables[m.__tablename__] for m in _ACCUMULATORS]
            await connection.run_sync(SettlementBase.metadata.create_all, tables)
        async with sessions.begin() as session:
            statements.clear()
            person_year, policy_year = await locked_rows(session, wanted)
            upserts = [s for s in statements if "INSERT" in s]
        assert (person_year.account_balance_fen, policy_year.annual_cap_fen) == (700, 90_000)
        postgres = engine.dialect.name == "postgresql"
        assert len(upserts) == (1 if postgres else 2)
        async with sessions.begin() as session:
            await session.execute(text("UPDATE policy_years SET fund_paid_fen = 1200"))
        async with sessions.begin() as session:
            person_year, policy_year = await locked_rows(session, wanted)
            assert (type(person_year), type(policy_year)) == (PersonYearRow, PolicyYearRow)
            assert (person_year.account_balance_fen, policy_year.fund_paid_fen) == (700, 1200)
            if postgres:
                # Both rows stay locked until this transaction ends: another cannot lock either.
                for table in ("person_years", "policy_years"):
                    async with sessions.begin() as other:
                        await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
                        with pytest.raises(DBAPIError, match="lock timeout"):
                            await other.execute(text(f"SELECT 1 FROM {table} FOR UPDATE"))
    finally:
        await engine.dispose()


_ACCUMULATORS = (PersonYearRow, PolicyYearRow)
_ZERO_PERSON = {"burden_fen": 0, "critical_paid_fen": 0, "assistance_paid_fen": 0}


async def test_a_one_statement_write_in_an_autocommit_session_is_committed(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT)"))
        async with make_autocommit_session_factory(engine).begin() as session:
            await session.execute(text("INSERT INTO probe (id, v) VALUES (1, 'kept')"))
        async with make_session_factory(engine)() as session:
            rows = (await session.execute(text("SELECT id, v FROM probe"))).all()
        assert [tuple(row) for row in rows] == [(1, "kept")]
    finally:
        await engine.dispose()


async def test_autocommit_sessions_open_no_transaction_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)

    async def in_transaction(sessions: async_sessionmaker[AsyncSession]) -> bool:
        async with sessions() as session:
            assert await session.scalar(text("SELECT 1")) == 1
            connection = await (await session.connection()).get_raw_connection()
            return bool(connection.driver_connection.is_in_transaction())  # type: ignore[union-attr]

    try:
        assert await in_transaction(make_autocommit_session_factory(engine)) is False
        # The ordinary sessions, on the same pool, still begin one.
        assert await in_transaction(make_session_factory(engine)) is True
    finally:
        await engine.dispose()


_OWNERS = ("identity", "filing", "catalogue", "settlement", "clearing", "gateway")


@pytest.mark.parametrize("owner", _OWNERS)
async def test_each_databases_migrations_build_exactly_its_models(
    database_url: str, owner: str
) -> None:
    package = "gateway" if owner == "gateway" else f"services.{owner}"
    models = importlib.import_module(f"{package}.models")
    assert models.__file__ is not None
    versions = Path(models.__file__).parent / "migrations"
    engine = make_engine(database_url)
    try:
        await upgrade_to_head(engine, versions, models.Base.metadata)

        def differences(connection: Connection) -> list[Any]:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, models.Base.metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_clearing_gives_entries_recorded_before_0005_their_shanghai_day(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        await upgrade_to_head(engine, CLEARING_MIGRATIONS, ClearingBase.metadata, "0004")
        columns = (
            "event_id, kind, setl_id, mdtrt_id, psn_no, fixmedins_code, treatment_admdvs, "
            "treatment_prov, insuplc_admdvs, insured_prov, insutype, med_type, event_time, period, "
            "medfee_sumamt_fen, hifp_pay_fen, critical_pay_fen, maf_pay_fen, acct_pay_fen, "
            "fund_pay_sumamt_fen, psn_cash_pay_fen, event_hash, recorded_at"
        )
        async with engine.begin() as connection:
            # 2026-11-30 17:00 UTC is already December 1st in Asia/Shanghai.
            await connection.execute(
                text(
                    f"INSERT INTO ledger_entries ({columns}) VALUES ('E1S', 1, 'E1', 'M', 'P', "
                    "'H', '110100', '110000', '131000', '130000', '310', '21', :when, '2026-12', "
                    "1, 1, 0, 0, 0, 1, 0, 'h', :when)"
                ),
                {"when": dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)},
            )
        await upgrade_to_head(engine, CLEARING_MIGRATIONS, ClearingBase.metadata)
        async with engine.connect() as connection:
            day = await connection.scalar(text("SELECT event_day FROM ledger_entries"))
        assert day == "2026-12-01"
    finally:
        await engine.dispose()


async def test_clearing_0006_sums_the_ledger_not_in_closed_periods_into_each_pairs_total(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        await upgrade_to_head(engine, CLEARING_MIGRATIONS, ClearingBase.metadata, "0005")
        columns = (
            "event_id, kind, setl_id, mdtrt_id, psn_no, fixmedins_code, treatment_admdvs, "
            "treatment_prov, insuplc_admdvs, insured_prov, insutype, med_type, event_time, period, "
            "event_day, medfee_sumamt_fen, hifp_pay_fen, critical_pay_fen, maf_pay_fen, "
            "acct_pay_fen, fund_pay_sumamt_fen, psn_cash_pay_fen, event_hash, recorded_at, "
            "cleared_period"
        )
        entries = [  # event id, insured province, period, hifp, acct, cleared in
            ("A", "130000", "2026-10", 500, 20, "2026-10"),  # closed: not counted
            ("B", "130000", "2026-11", 300, 10, "2026-11"),  # cleared, not closed: counted
            ("C", "130000", "2026-11", 70, 0, None),
            ("D", "130000", "2026-11", -70, 0, None),  # C's cancellation
            ("E", "510000", "2025-12", 9, 1, None),
        ]
        when = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
        async with engine.begin() as connection:
            for state, period in ((3, "2026-10"), (2, "2026-11")):
                await connection.execute(
                    text(
                        "INSERT INTO clearing_periods (period, state, statement_hash, "
                        "run_request_id) VALUES (:period, :state, '', '')"
                    ),
                    {"period": period, "state": state},
                )
            for event_id, insured, period, hifp, acct, cleared in entries:
                await connection.execute(
                    text(
                        f"INSERT INTO ledger_entries ({columns}) VALUES (:id, 1, :id, 'M', 'P', "
                        "'H', '110100', '110000', :insured, :insured, '310', '21', :when, "
                        ":period, '2026-11-02', 1, :hifp, 0, 0, :acct, :hifp, 0, 'h', :when, "
                        ":cleared)"
                    ),
                    {
                        "id": event_id,
                        "insured": insured,
                        "when": when,
                        "period": period,
                        "hifp": hifp,
                        "acct": acct,
                        "cleared": cleared,
                    },
                )
        await upgrade_to_head(engine, CLEARING_MIGRATIONS, ClearingBase.metadata)
        async with engine.connect() as connection:
            totals = await connection.execute(
                text("SELECT year, insured_prov, treatment_prov, uncleared_fen FROM pair_spend")
            )
            assert sorted(tuple(row) for row in totals) == [
                (2025, "510000", "110000", 10),
                (2026, "130000", "110000", 310),
            ]
    finally:
        await engine.dispose()


async def test_a_growing_upload_refreshes_postgresql_statistics_inside_its_transaction(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    counted = text("SELECT reltuples FROM pg_class WHERE relname = 'persons'")
    try:
        await upgrade_to_head(engine, IDENTITY_MIGRATIONS, IdentityBase.metadata)
        async with sessions.begin() as session:
            tables = GrowingTables(session, PersonRow, first_at=10_000)
            await session.execute(
                text(
                    "INSERT INTO persons"
                    " (psn_no, psn_cert_type, certno, psn_name, gend, naty, brdy) SELECT"
                    " 'P' || n, '01', lpad(n::text, 18, '0'), 'x', '1', '01', '1960-01-01'"
                    " FROM generate_series(1, 20000) AS n"
                )
            )
            await tables.grew(9_999)
            before = await session.scalar(counted)
            await tables.grew(1)
            after = await session.scalar(counted)
        async with sessions() as session:
            assert await session.scalar(text("SELECT count(*) FROM persons")) == 20_000
    finally:
        await engine.dispose()
    assert before is not None and before <= 0  # never analyzed: the planner sees an empty table
    assert after == 20_000  # ANALYZE counted the rows of the transaction that ran it
