"""Benchmark: ClassifyFeeLines with 50-line bills against a 50,000-item catalogue.

Runs two catalogue processes on the same PostgreSQL database in one run: one reading through
Redis (warmed first), one reading PostgreSQL on every call (CATALOGUE_CACHE_ENABLED=false), and
prints lines/s and p50/p99 per call for each, and their ratio.

    .venv/bin/python bench/classify.py [--items 50000] [--calls 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc

from services.common.callers import caller_metadata
from services.common.ports import free_port_block
from services.common.values import date_to_proto, money

POSTGRES = os.environ.get("MEDSETTLE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("MEDSETTLE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[1]
INSTITUTION = "H11010500001"


def _start(port: int, database: str, cache: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'protos' / 'gen'}",
        "CATALOGUE_GRPC_PORT": str(port),
        "CATALOGUE_DATABASE_URL": database,
        "CATALOGUE_REDIS_URL": REDIS if cache else "",
        "CATALOGUE_REDIS_PREFIX": f"bench{port}",
        "CATALOGUE_CACHE_ENABLED": "true" if cache else "false",
        "CATALOGUE_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.catalogue"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(300):
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("catalogue did not start")


def _items(count: int) -> list[catalogue_pb2.CatalogueItem]:
    rng = random.Random(50)
    items = []
    for index in range(count):
        item_class = rng.choices([1, 2, 3], weights=(50, 40, 10))[0]
        item = catalogue_pb2.CatalogueItem(
            list_type=rng.choice(["101", "102", "201", "301"]),
            med_list_codg=f"XN{index:08d}",
            name=f"item {index}",
            item_class=item_class,  # type: ignore[arg-type]
            selfpay_prop="0.10" if item_class == 2 else "0",
            begin_date=date_to_proto(dt.date(2024, 1, 1)),
        )
        if rng.random() < 0.3:
            item.price_cap.CopyFrom(money(rng.randrange(100, 100_000)))
        items.append(item)
    return items


def _bill(rng: random.Random, catalogue_size: int) -> catalogue_service_pb2.ClassifyFeeLinesRequest:
    lines = []
    for sn in range(50):
        code = f"XN{rng.randrange(catalogue_size):08d}" if rng.random() < 0.95 else f"ZZ{sn}"
        lines.append(
            catalogue_service_pb2.FeeLine(
                feedetl_sn=str(sn),
                med_list_codg=code,
                cnt="2",
                pric="12.340000",
                amount=money(2468),
                fee_date=date_to_proto(dt.date(2026, 7, 1)),
            )
        )
    return catalogue_service_pb2.ClassifyFeeLinesRequest(
        fixmedins_code=INSTITUTION, med_type="21", lines=lines
    )


async def _measure(
    stub: catalogue_service_pb2_grpc.CatalogueServiceAsyncStub,
    bills: list[catalogue_service_pb2.ClassifyFeeLinesRequest],
    concurrency: int,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(bills)

    async def worker() -> None:
        while queue:
            bill = queue.pop()
            clock = time.perf_counter()
            await stub.ClassifyFeeLines(bill, timeout=30)
            latencies.append(time.perf_counter() - clock)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def _report(name: str, seconds: float, latencies: list[float]) -> float:
    lines_per_s = len(latencies) * 50 / seconds
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<28} {lines_per_s:>10,.0f} lines/s  {len(latencies) / seconds:>7,.1f} calls/s  "
        f"p50 {quantiles[49] * 1000:6.2f} ms  p99 {quantiles[98] * 1000:6.2f} ms"
    )
    return lines_per_s


async def main(items: int, calls: int, concurrency: int) -> None:
    name = f"medsettle_bench_catalogue_{os.getpid()}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = f"{POSTGRES.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    cached_port = free_port_block(2)
    direct_port = cached_port + 1
    processes = [_start(cached_port, database, True)]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cached_port}") as cached_channel:
            await _wait_serving(cached_channel)
            processes.append(_start(direct_port, database, False))
            cached = catalogue_service_pb2_grpc.CatalogueServiceStub(cached_channel)
            await cached.UpsertInstitutions(
                catalogue_service_pb2.UpsertInstitutionsRequest(
                    institutions=[
                        catalogue_pb2.Institution(
                            fixmedins_code=INSTITUTION,
                            fixmedins_name="bench hospital",
                            admdvs="110105",
                            level=3,
                            open_inpatient=True,
                        )
                    ]
                ),
                metadata=caller_metadata("national"),
            )
            catalogue = _items(items)
            clock = time.perf_counter()

            async def upload() -> AsyncIterator[catalogue_service_pb2.UpsertCatalogueRequest]:
                for start in range(0, len(catalogue), 1000):
                    yield catalogue_service_pb2.UpsertCatalogueRequest(
                        prov_admdvs="110000",
                        items=catalogue[start : start + 1000],
                        last=start + 1000 >= len(catalogue),
                    )

            version = await cached.UpsertCatalogue(
                upload(), metadata=caller_metadata("national"), timeout=600
            )
            print(
                f"uploaded {version.item_count:,} items as version {version.version} "
                f"in {time.perf_counter() - clock:.1f} s"
            )
            rng = random.Random(7)
            bills = [_bill(rng, items) for _ in range(calls)]
            await _measure(cached, bills, concurrency)  # warm Redis and the local level
            cached_seconds, cached_latencies = await _measure(cached, bills, concurrency)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{direct_port}") as direct_channel:
                await _wait_serving(direct_channel)
                direct = catalogue_service_pb2_grpc.CatalogueServiceStub(direct_channel)
                await _measure(direct, bills[:20], concurrency)
                direct_seconds, direct_latencies = await _measure(direct, bills, concurrency)
            stats = await cached.GetCacheStats(catalogue_service_pb2.GetCacheStatsRequest())
        print(f"{calls} bills x 50 lines, concurrency {concurrency}, catalogue {items:,} items")
        warm = _report("cache warm (Redis + local)", cached_seconds, cached_latencies)
        cold = _report("PostgreSQL on every call", direct_seconds, direct_latencies)
        print(f"ratio cached / PostgreSQL: {warm / cold:.2f}x lines/s")
        print(
            f"cache hits {stats.hits:,}, misses {stats.misses:,}, redis errors {stats.redis_errors}"
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    uvloop.run(main(args.items, args.calls, args.concurrency))
