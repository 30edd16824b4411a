"""Benchmark: one month's clearing over millions of ledger entries on PostgreSQL.

Fills a scratch database with N settled entries spread over 31 insured and 31 treatment
provinces and one month (PostgreSQL's generate_series, not the RPC: the point is the clearing),
then times the clearing service's RunClearing over gRPC (first run and a repeat), checks the
statements against an independent SQL sum to the fen and prints the figures.

    .venv/bin/python bench/clearing.py [--entries 10000000]
"""

from __future__ import annotations

import argparse
import os
import time

import asyncpg
import grpc
import uvloop
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from services.clearing.config import ClearingSettings
from services.clearing.models import Base
from services.clearing.server import MIGRATIONS_DIR, build_servicer, registrar
from services.common.callers import caller_metadata
from services.common.runtime import open_storage
from services.common.server import start_server

POSTGRES = os.environ.get("MEDSETTLE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
DATABASE = "medsettle_bench_clearing"
PERIOD = "2026-11"
PROVINCES = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
]  # fmt: skip
_FILL = """
INSERT INTO ledger_entries (
    event_id, kind, setl_id, mdtrt_id, psn_no, fixmedins_code, treatment_admdvs, treatment_prov,
    insuplc_admdvs, insured_prov, insutype, med_type, event_time, period, event_day,
    medfee_sumamt_fen, hifp_pay_fen, critical_pay_fen, maf_pay_fen, acct_pay_fen,
    fund_pay_sumamt_fen, psn_cash_pay_fen, event_hash, recorded_at, cleared_period)
SELECT 'B' || g || 'S', 1, 'B' || g, 'M' || g, 'P' || (g % 1000000),
       'H' || t || '0100000001', t || '0100', t || '0000', i || '0100', i || '0000', '310', '21',
       at, '2026-11', to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'),
       20000 + g % 500000, 10000 + g % 300000, g % 7 * 1000, g % 11 * 100, g % 13 * 10,
       10000 + g % 300000 + g % 7 * 1000 + g % 11 * 100,
       10000 + g % 500000 - g % 300000 - g % 7 * 1000 - g % 11 * 100 - g % 13 * 10,
       'bench', now(), NULL
FROM (
    SELECT g,
           ($2::text[])[1 + g % 31] AS t,
           ($2::text[])[1 + (g / 31 + 1 + g % 30) % 31] AS i,
           timestamptz '2026-11-01 00:00:00+08' + (g % 2591999) * interval '1 second' AS at
    FROM generate_series($1::bigint, $3::bigint) AS g
) AS rows
"""
_INDEPENDENT_SUM = """
SELECT count(*), sum(hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen)
FROM ledger_entries WHERE period <= $1
"""


async def _fill(entries: int) -> float:
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    settings = ClearingSettings(
        database_url=f"{POSTGRES.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"
    )
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    await storage.close()
    connection = await asyncpg.connect(f"{POSTGRES}/{DATABASE}")
    started = time.perf_counter()
    step = 1_000_000
    for first in range(1, entries + 1, step):
        last = min(entries, first + step - 1)
        await connection.execute(_FILL, first, [f"{p}" for p in PROVINCES], last)
        print(f"  filled {last:,} entries", flush=True)
    await connection.execute("ANALYZE ledger_entries")
    await connection.close()
    return time.perf_counter() - started


async def _clear() -> tuple[float, float, clearing_service_pb2.ClearingRun]:
    settings = ClearingSettings(
        database_url=f"{POSTGRES.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}",
        log_level="WARNING",
    )
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    provider = TracerProvider()
    running = await start_server(
        registrar(build_servicer(storage)),
        host="127.0.0.1",
        port=0,
        tracer=provider.get_tracer("bench"),
        error_domain="clearing.medsettle",
        max_concurrent_rpcs=16,
    )
    national = caller_metadata("national")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = clearing_service_pb2_grpc.ClearingServiceStub(channel)
            for prefix in PROVINCES:
                await stub.ConfirmTreatmentPeriod(
                    clearing_service_pb2.ConfirmTreatmentPeriodRequest(
                        period=PERIOD, province=f"{prefix}0000"
                    ),
                    metadata=national,
                    timeout=60,
                )
            started = time.perf_counter()
            first = await stub.RunClearing(
                clearing_service_pb2.RunClearingRequest(request_id="bench-1", period=PERIOD),
                metadata=national,
                timeout=3600,
            )
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await stub.RunClearing(
                clearing_service_pb2.RunClearingRequest(request_id="bench-2", period=PERIOD),
                metadata=national,
                timeout=3600,
            )
            again_s = time.perf_counter() - started
            assert again.period.statement_hash == first.period.statement_hash
    finally:
        await running.stop(0)
        await storage.close()
    return first_s, again_s, first


async def main(entries: int) -> None:
    """Fill, clear twice, check, print."""
    print(f"filling {entries:,} ledger entries into {DATABASE}", flush=True)
    fill_s = await _fill(entries)
    first_s, again_s, run = await _clear()
    connection = await asyncpg.connect(f"{POSTGRES}/{DATABASE}")
    count, total = await connection.fetchrow(_INDEPENDENT_SUM, PERIOD)
    await connection.close()
    cleared = sum(s.clearing_amount.amount_fen for s in run.statements)
    entry_count = sum(s.entry_count for s in run.statements)
    assert (entry_count, cleared) == (count, total), "statements differ from the ledger sum"
    assert sum(p.net.amount_fen for p in run.positions) == 0
    print(f"entries: {entries:,} (fill {fill_s:.1f} s)")
    print(f"statements: {len(run.statements)}, transfers: {len(run.transfers)}")
    print(f"RunClearing first run: {first_s:.1f} s ({entries / first_s:,.0f} entries/s)")
    print(f"RunClearing repeat:    {again_s:.1f} s (statement hash unchanged)")
    print(f"statements = independent SQL sum: {cleared / 100:,.2f} yuan over {count:,} entries")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    uvloop.run(main(parser.parse_args().entries))
